"""Run a study of ``experiments/study/`` at ``scale=tiny`` in-process, through the ``run_study`` the CLI calls
(shared by the e2e study tests)."""

from __future__ import annotations

import json
from pathlib import Path

from lensml.study import run_study
from lensml.study_config import compose_study


def run_tiny(study: str, root: Path, *extra: str) -> dict:
    """All stages of ``study`` at tiny scale under ``root`` (200 bootstrap resamples); its summary."""
    overrides = [f"study={study}", "scale=tiny", f"out_root={root}", f"summary_dir={root}/summaries"]
    run_study(compose_study([*overrides, "n_boot=200", *extra]))
    return json.loads((root / "summaries" / f"{study}.json").read_text())


def run_stage(study: str, root: Path, stage: str, *extra: str) -> dict | None:
    """One stage of a study at tiny scale (what it returns: the summary, or None before ``summarise``)."""
    overrides = [f"study={study}", "scale=tiny", f"out_root={root}", f"summary_dir={root}/summaries"]
    return run_study(compose_study([*overrides, f"stage={stage}", *extra]))

"""Build ``reports/<name>/README.md`` and figures from committed study summaries: ``python -m lensml.report``.

Reads ``<summary_dir>/<study>.json`` (+ ``examples.npz``, ``near_real_<plateifu>.npz``) written by
``python -m lensml.study``; needs no training outputs. Every number in the README is formatted from those
files (``fmt_ci``), so re-running this command reproduces the report exactly. The sections live in
``lensml.reporting`` (one module per study family, in the order of ``lensml.reporting.registry.SECTIONS``).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from lensml.analysis.markdown import fmt_ci
from lensml.cli import clean_errors
from lensml.reporting.registry import build_report

__all__ = ["build_report", "fmt_ci", "main"]


@hydra.main(version_base="1.3", config_path="../conf", config_name="report")
@clean_errors
def main(cfg: DictConfig) -> None:
    path = build_report(Path(cfg.summary_dir), Path(cfg.out_dir), str(cfg.name))
    print(f"report written: {path}", flush=True)


if __name__ == "__main__":
    main()

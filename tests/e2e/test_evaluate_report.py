"""``python -m lensml.evaluate`` scores checkpoints under a test condition; ``lensml.report`` rebuilds the
committed report from its committed summaries alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lensml.paths import CONF_DIR
from lensml.report import build_report, fmt_ci
from lensml.study import run_study

REPO = CONF_DIR.parent
COMMITTED = REPO / "reports" / "v1"


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A tiny baseline and dual-stream run (the headline study's data and train stages)."""
    root = tmp_path_factory.mktemp("runs")
    for stage in ("data", "train"):
        if GlobalHydra.instance().is_initialized():
            GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "study", overrides=["study=headline", "scale=tiny", f"out_root={root}", f"stage={stage}"]
            )
        run_study(cfg)
    return [root / "headline" / "runs" / "baseline_s0", root / "headline" / "runs" / "dual_stream_s0"]


def test_evaluate_cli_scores_checkpoints_under_a_condition(run_dirs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "ev"
    cmd = [
        sys.executable,
        "-m",
        "lensml.evaluate",
        f"runs=[{run_dirs[0]},{run_dirs[1]}]",
        "condition=['subhalo.mass_bin=1e10','noise=low_snr']",
        "n_test=32",
        "n_boot=100",
        "name=low",
        f"out_dir={out}",
    ]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "dual_stream - baseline: dAUC" in res.stdout
    m = json.loads((out / "eval_metrics.json").read_text())
    assert m["condition"] == ["subhalo.mass_bin=1e10", "noise=low_snr"]
    assert set(m["variants"]) == {"baseline", "dual_stream"} and m["n"] == 32
    comp = m["comparisons"][0]
    assert (comp["a"], comp["b"]) == ("baseline", "dual_stream")
    a, b = m["variants"]["baseline"]["auc"]["value"], m["variants"]["dual_stream"]["auc"]["value"]
    assert comp["auc"]["value"] == pytest.approx(b - a)
    z = np.load(out / "predictions.npz")
    mass = z["baseline_s0__mass_msun"][z["baseline_s0__label"] == 1]
    assert np.all((mass >= 10**9.5) & (mass < 10**10.5))
    assert np.array_equal(z["baseline_s0__label"], z["dual_stream_s0__label"])
    assert (out / "roc.png").stat().st_size > 1000


def test_evaluate_refuses_an_empty_run_list(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "lensml.evaluate", f"out_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0 and "runs=[] is empty" in res.stderr


@pytest.mark.skipif(not (COMMITTED / "summaries" / "headline.json").exists(), reason="no committed report")
def test_report_is_reproduced_from_the_committed_summaries(tmp_path: Path) -> None:
    shutil.copytree(COMMITTED / "summaries", tmp_path / "v1" / "summaries")
    readme = build_report(tmp_path / "v1" / "summaries", tmp_path / "v1", "v1")
    text = readme.read_text()
    assert text == (COMMITTED / "README.md").read_text()
    s = json.loads((COMMITTED / "summaries" / "headline.json").read_text())
    for c in s["conditions"].values():
        for v in c["variants"].values():
            assert fmt_ci(v["auc"]) in text and fmt_ci(v["recall_at_fpr5"]) in text
        assert fmt_ci(c["comparisons"][0]["auc"], signed=True) in text
    figs = sorted((tmp_path / "v1" / "figures").glob("*.png"))
    assert {f.name for f in figs} == {f.name for f in (COMMITTED / "figures").glob("*.png")}
    assert all(f.stat().st_size < 200_000 for f in figs)

"""``lensml.report`` rebuilds the committed report from its committed summaries alone; ``lensml.evaluate``
refuses bad input (its CLI is run on real checkpoints in ``test_studies.py``, which trains them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lensml.paths import CONF_DIR
from lensml.report import build_report, fmt_ci

REPO = CONF_DIR.parent
COMMITTED = REPO / "reports" / "v1"


def test_evaluate_refuses_an_empty_run_list(tmp_path: Path) -> None:
    from lensml.errors import ConfigError
    from lensml.evaluate import evaluate

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"out_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="runs=\\[\\] is empty"):
        evaluate(cfg)


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


def test_velocity_channel_report_is_reproduced_and_shows_its_checks(tmp_path: Path) -> None:
    committed = REPO / "reports" / "velocity_channel"
    shutil.copytree(committed / "summaries", tmp_path / "vc" / "summaries")
    text = build_report(tmp_path / "vc" / "summaries", tmp_path / "vc", "velocity_channel").read_text()
    assert text == (committed / "README.md").read_text()
    leak = json.loads((committed / "summaries" / "mask_leak.json").read_text())["mask_leak"]
    for e in leak["conditions"].values():
        assert fmt_ci(e["velocity_chi2_shuffled"]) in text and fmt_ci(e["flux_bayes"]) in text
    assert "velocity S/N, floor 10" in text


def test_v2_report_is_reproduced_from_its_committed_summaries(tmp_path: Path) -> None:
    committed = REPO / "reports" / "v2"
    shutil.copytree(committed / "summaries", tmp_path / "v2" / "summaries")
    text = build_report(tmp_path / "v2" / "summaries", tmp_path / "v2", "v2").read_text()
    assert text == (committed / "README.md").read_text()
    hn = json.loads((committed / "summaries" / "hard_negatives.json").read_text())
    for e in hn["false_positives"]["conditions"].values():
        for v in e["variants"].values():
            assert fmt_ci(v) in text

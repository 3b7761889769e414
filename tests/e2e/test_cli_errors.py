"""Impossible config values stop the real CLIs at start with one clear line naming the key (no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lensml.paths import PROJECT_ROOT


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("subhalo.mass_bin=-1e8", "subhalo.mass_bin"),
        ("lens.theta_E=0", "lens.theta_E"),
        ("lens.z_source=0.3", "lens.z_source"),
        ("+data.n_trian=5", "data.n_trian"),  # a typo'd new key: named, with the closest valid key
        ("model.name=foo", "model.name"),  # would train dual_stream but report model=foo
    ],
)
def test_train_refuses_impossible_physics_before_training(tmp_path: Path, override: str, key: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "lensml.train", override, "logger=csv", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert f"lensml: error: {key}" in res.stderr or key in res.stderr.splitlines()[-1]
    assert "Traceback" not in res.stderr
    assert "Epoch 0" not in res.stderr + res.stdout  # refused before any training step
    assert not (tmp_path / "run" / "metrics.json").exists()
    # the failed start leaves its reason in the run's log, beside the .hydra/ folder it created
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"lensml: error: {key}" in log or key in log.splitlines()[-1]
    if key == "data.n_trian":
        assert "did you mean data.n_train" in res.stderr


def test_evaluate_refuses_an_empty_run_list_with_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "lensml.evaluate", f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "lensml: error:" in res.stderr and "runs=[] is empty" in res.stderr
    assert "Traceback" not in res.stderr

"""A finished run is re-used only with the config it was trained with (``lensml.run_identity``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lensml import run_identity
from lensml.analysis.scoring import compose_train_config
from lensml.errors import ConfigError
from lensml.study import reusable

BASE = ["logger=csv", "data.seed=0", "data.n_train=48", "trainer.max_epochs=1", "seed=0"]


def _cfg(run_dir: Path, *extra: str):
    return compose_train_config([*BASE, *extra], run_dir)


def test_the_identity_ignores_where_and_how_fast_a_run_goes(tmp_path: Path) -> None:
    a = run_identity.run_hash(_cfg(tmp_path / "a"))
    same = _cfg(tmp_path / "b", "data.num_workers=0", "trainer.enable_progress_bar=false", "num_threads=2",
                "logger=wandb", "sim.chunk_size=8", "data.cache_dir=/elsewhere")
    assert run_identity.run_hash(same) == a
    for other in ("trainer.max_epochs=2", "noise=low_snr", "lens.theta_E=1.2", "model=baseline", "seed=1"):
        assert run_identity.run_hash(_cfg(tmp_path / "a", other)) != a, other


def _finished(run_dir: Path, *extra: str) -> dict:
    run_dir.mkdir(parents=True)
    run_identity.record(run_dir, _cfg(run_dir, *extra))
    (run_dir / "metrics.json").write_text("{}")
    return {"run_dir": run_dir, "scale": "tiny"}


def test_a_finished_run_with_another_config_is_an_error_or_rerun_or_reused(tmp_path: Path) -> None:
    rd = tmp_path / "runs" / "baseline_s0"
    job = _finished(rd)
    assert reusable(job, _cfg(rd), "error", "toy")
    assert not reusable({"run_dir": tmp_path / "new", "scale": "tiny"}, _cfg(rd), "error", "toy")
    changed = _cfg(rd, "trainer.max_epochs=2")
    assert run_identity.differences(rd, changed) == ["trainer.max_epochs"]
    with pytest.raises(ConfigError) as err:
        reusable(job, changed, "error", "toy")
    msg = str(err.value)
    assert "\n" not in msg and str(rd) in msg and "trainer.max_epochs" in msg
    assert "python -m lensml.study study=toy scale=tiny on_mismatch=rerun" in msg
    assert reusable(job, changed, "reuse", "toy") and (rd / "metrics.json").exists()
    assert not reusable(job, changed, "rerun", "toy")
    assert not rd.exists() and len(list(rd.parent.glob("baseline_s0.stale-*"))) == 1


def test_a_run_without_any_record_is_not_reused_silently(tmp_path: Path) -> None:
    rd = tmp_path / "run"
    rd.mkdir()
    (rd / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="has no record of its config"):
        reusable({"run_dir": rd, "scale": "full"}, _cfg(rd), "error", "toy")


def test_an_evaluation_with_another_number_of_test_samples_is_an_error_not_reused(tmp_path: Path) -> None:
    """Two studies that evaluate the same condition name at different n_test share the file: the second one
    stops with a message instead of mixing sizes or overwriting the first one's work."""
    import numpy as np

    from lensml.study import _evaluated

    path = tmp_path / "m1e11-abc.npz"
    assert not _evaluated(path, 4)
    np.savez(path, probs=np.zeros(5), label=np.zeros(5))
    assert _evaluated(path, 5)
    with pytest.raises(ConfigError, match="n_test=4.*another name"):
        _evaluated(path, 4)
    assert path.exists()


def test_the_head_a_residual_run_was_trained_with_is_read_from_its_record(tmp_path: Path) -> None:
    new = tmp_path / "new"
    _finished(new, "model=resnet")
    assert run_identity.head_norm(new) == "batch"
    old = tmp_path / "old"
    _finished(old, "model=resnet", "model.net.head_norm=none")
    assert run_identity.head_norm(old) == "none"
    record = old / run_identity.RECORD
    rec = json.loads(record.read_text())
    del rec["identity"]["model"]["net"]["head_norm"]  # a run recorded before the key existed
    record.write_text(json.dumps(rec))
    assert run_identity.head_norm(old) == "none"
    _finished(tmp_path / "cnn", "model=baseline")
    assert run_identity.head_norm(tmp_path / "cnn") is None and run_identity.head_norm(tmp_path / "x") is None


def test_a_residual_run_recorded_before_head_norm_matches_head_norm_none(tmp_path: Path) -> None:
    rd = tmp_path / "old"
    _finished(rd, "model=resnet", "model.net.head_norm=none")
    record = rd / run_identity.RECORD
    rec = json.loads(record.read_text())
    del rec["identity"]["model"]["net"]["head_norm"]
    record.write_text(json.dumps(rec))
    assert run_identity.differences(rd, _cfg(rd, "model=resnet", "model.net.head_norm=none")) == []
    assert run_identity.differences(rd, _cfg(rd, "model=resnet")) == ["model.net.head_norm"]

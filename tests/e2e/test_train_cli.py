"""The real CLIs through subprocess, tiny sizes: train (csv / W&B offline), sweep + aggregate,
make_dataset + cache, resume, DDP with two CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from lensml.data.cache import physics_config
from lensml.paths import CONF_DIR
from lensml.sim.simulator import build_simulator

SMALL = ["trainer.max_epochs=1", "data.n_train=256", "data.n_val=128", "data.n_test=128"]
# faster physics and loaders for the tests that check plumbing rather than the listed commands
FAST = ["instrument.n_pix=32", "instrument.pixel_scale_arcsec=0.1", "instrument.supersample=1",
        "data.num_workers=0", "trainer.enable_progress_bar=false"]


def cli(
    module: str, *args: str, cwd: Path, ok: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=300)
    if ok and proc.returncode != 0:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        raise AssertionError(f"{module} {args} failed ({proc.returncode}):\n{tail}")
    return proc


def check_run_dir(run_dir: Path, n_test: int) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    for split in ("val", "test"):
        assert 0.0 <= m[split]["auc"] <= 1.0
        assert 0.0 <= m[split]["recall_at_fpr5"] <= 1.0
        assert m[split]["per_mass_bin"], "per-mass-bin metrics missing"
    assert m["test"]["n"] == n_test
    for key in ("auc", "recall_at_fpr5"):  # bootstrap interval brackets the full-test-set value
        lo, hi = m["test"][f"{key}_ci95"]
        assert lo <= m["test"][key] + 1e-6 and m["test"][key] - 1e-6 <= hi
    # the AUC interval has a width; the recall at 5 % FPR of a tiny test set may be 0 in every resample
    assert m["test"]["auc_ci95"][0] < m["test"]["auc_ci95"][1]
    assert any(e["auc"] is not None for e in m["test"]["per_mass_bin"].values())
    with np.load(run_dir / "test_predictions.npz") as z:
        keys = {"probs", "labels", "mass_msun", "sub_x_arcsec", "sub_y_arcsec", "source_id", "index"}
        keys |= {"m_trunc_msun", "m_proj_1kpc_msun", "m_proj_0p1arcsec_msun", "tau_trunc", "c200"}
        assert keys <= set(z.files)
        assert len(z["probs"]) == n_test and sorted(z["index"]) == list(range(n_test))
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and Path(m["best_checkpoint"]).exists()
    return m


def test_train_baseline_csv(tmp_path):
    run = tmp_path / "run"
    p = cli("lensml.train", "model=baseline", *SMALL, "logger=csv", f"hydra.run.dir={run}", cwd=tmp_path)
    m = check_run_dir(run, 128)
    assert m["model"] == "baseline" and m["channels"] == "flux"
    assert "test  ROC AUC" in p.stdout and "val   ROC AUC" in p.stdout
    assert (run / "csv" / "metrics.csv").exists()
    mask = os.umask(0o022)
    os.umask(mask)  # written files follow the umask like any other write (issue 11), checkpoints included
    for path in (run / "metrics.json", run / "test_predictions.npz", run / "checkpoints" / "last.ckpt",
                 Path(m["best_checkpoint"])):
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, f"{path.name}: {oct(path.stat().st_mode)}"


def test_train_dual_stream_low_snr_wandb_offline_without_key_or_network(tmp_path):
    run = tmp_path / "run"
    env = {"WANDB_MODE": None, "WANDB_API_KEY": None, "WANDB_BASE_URL": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    cli("lensml.train", "model=dual_stream", "noise=low_snr", *SMALL, f"hydra.run.dir={run}", cwd=tmp_path,
        env=env)
    m = check_run_dir(run, 128)
    assert m["model"] == "dual_stream" and m["choices"]["noise"] == "low_snr"
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("run-*.wandb")), "no offline W&B run left to sync"
    assert m["wandb_dir"] == str(offline[0])


def test_train_velocity_weight_mode_snr_flux(tmp_path):
    """experiment=velocity_weight (flux; velocity, mask, weight; flux in S/N units) through the real CLI."""
    import torch

    run = tmp_path / "run"
    cli("lensml.train", "experiment=velocity_weight", "trainer.max_epochs=1", "data.n_train=64",
        "data.n_val=32", "data.n_test=32", "logger=csv", *FAST, f"hydra.run.dir={run}", cwd=tmp_path)
    m = check_run_dir(run, 32)
    assert m["model"] == "dual_stream" and m["channels"] == "flux_velocity_weight"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    state = ckpt["state_dict"]
    assert state["net.flux_encoder.features.0.weight"].shape[1] == 1  # flux stream: channel 0
    assert state["net.velocity_encoder.features.0.weight"].shape[1] == 3  # velocity, mask, weight


@pytest.mark.slow
def test_sweep_then_aggregate(tmp_path):
    sweep = tmp_path / "sweep"
    cli("lensml.train", "-m", "model=baseline,dual_stream", "subhalo.mass_bin=1e8,1e9",
        "trainer.max_epochs=1", "data.n_train=128", "data.n_val=64", "data.n_test=64", "logger=csv", *FAST,
        f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    runs = sorted(sweep.rglob("metrics.json"))
    assert len(runs) == 4
    metrics = [json.loads(r.read_text()) for r in runs]
    seen = {(m["model"], m["mass_bin"]) for m in metrics}
    assert seen == {(a, b) for a in ("baseline", "dual_stream") for b in (1e8, 1e9)}
    p = cli("lensml.aggregate", str(sweep), cwd=tmp_path)
    assert "baseline" in p.stdout and "dual_stream" in p.stdout and "test_auc_mean" in p.stdout
    assert (sweep / "aggregate.csv").exists() and (sweep / "auc_vs_mass.png").stat().st_size > 1000
    rows = (sweep / "aggregate.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 4


@pytest.mark.slow
def test_make_dataset_cache_matches_on_the_fly_and_bad_caches_are_refused(tmp_path):
    sizes = ["data.n_train=64", "data.n_val=32", "data.n_test=32"]
    cache = tmp_path / "cache"
    p = cli("lensml.make_dataset", *sizes, *FAST[:3], f"data.cache_dir={cache}", "shard_size=40",
            f"hydra.run.dir={tmp_path / 'md'}", cwd=tmp_path)
    assert "make_dataset" in p.stderr  # tqdm progress bar
    assert sorted(f.name for f in cache.glob("*.npz")) == [
        "test_00000.npz", "train_00000.npz", "train_00001.npz", "val_00000.npz"]
    # the cached samples are the on-the-fly samples of the same config and seed
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["run_dir=.", *FAST[:3]])
    simulator = build_simulator(physics_config(cfg))
    with np.load(cache / "train_00001.npz") as z:
        want = simulator.sample_batch(0, "train", z["index"].tolist())
        for key in ("label", "mass_msun", "sub_x_arcsec", "source_id"):
            np.testing.assert_array_equal(z[key], want[key])
        for key in ("flux", "velocity"):  # up to float32 round-off of batched rendering
            np.testing.assert_allclose(z[key], want[key], rtol=1e-4, atol=1e-4)
    common = ["model=baseline", "trainer.max_epochs=1", *sizes, "logger=csv", *FAST,
              f"data.cache_dir={cache}"]
    cli("lensml.train", *common, "data=cache", f"hydra.run.dir={tmp_path / 'cached'}", cwd=tmp_path)
    check_run_dir(tmp_path / "cached", 32)
    bad = cli("lensml.train", *common, "data=cache", "noise=low_snr", f"hydra.run.dir={tmp_path / 'x'}",
              cwd=tmp_path, ok=False)
    assert bad.returncode != 0 and "was made for another config" in bad.stderr and "noise." in bad.stderr
    shard = cache / "val_00000.npz"
    shard.write_bytes(shard.read_bytes()[:-50] + b"\0" * 50)
    bad = cli("lensml.train", *common, "data=cache", f"hydra.run.dir={tmp_path / 'y'}", cwd=tmp_path,
              ok=False)
    assert bad.returncode != 0 and "val_00000.npz fails its sha256 check" in bad.stderr


@pytest.mark.slow
def test_resume_from_last_checkpoint(tmp_path):
    from lensml.logging_setup import resumed_first_epoch

    run = tmp_path / "run"
    args = ["model=baseline", "data.n_train=64", "data.n_val=32", "data.n_test=32", "logger=csv", *FAST,
            f"hydra.run.dir={run}"]
    # lr ~ 0: val/auc never improves after epoch 0, yet last.ckpt must hold the latest epoch
    cli("lensml.train", *args, "trainer.max_epochs=2", "model.optimizer.lr=1e-30", cwd=tmp_path)
    assert json.loads((run / "metrics.json").read_text())["epochs_trained"] == 2
    assert resumed_first_epoch(run / "checkpoints" / "last.ckpt") == 2, "last.ckpt is not the latest epoch"
    p = cli("lensml.train", *args, "trainer.max_epochs=3", "resume=true", cwd=tmp_path)
    m = json.loads((run / "metrics.json").read_text())
    assert m["resumed_from"] == str(run / "checkpoints" / "last.ckpt")
    assert m["epochs_trained"] == 3
    assert "Restoring states from the checkpoint path" in p.stdout + p.stderr


@pytest.mark.slow
def test_ddp_two_cpu_processes_gloo(tmp_path):
    run = tmp_path / "run"
    cli("lensml.train", "trainer=ddp_cpu", "model=baseline", "trainer.max_epochs=1", "data.n_train=64",
        "data.n_val=30", "data.n_test=30", "logger=csv", *FAST, f"hydra.run.dir={run}", cwd=tmp_path)
    m = json.loads((run / "metrics.json").read_text())
    # 30 test samples over 2 processes: the sampler pads to 32; gathered predictions are de-duplicated
    assert m["test"]["n"] == 30
    with np.load(run / "test_predictions.npz") as z:
        assert sorted(z["index"]) == list(range(30))


@pytest.mark.parametrize("split", ["train", "test"])
def test_corrupt_cache_shard_is_refused_before_training(tmp_path, split):
    """One flipped byte in a train or test shard stops the run before any step, in one line (issue 11)."""
    from lensml.data.cache import cache_config, generate_cache

    cache = tmp_path / "cache"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["run_dir=.", *FAST[:3]])
    sim_cfg = physics_config(cfg)
    generate_cache(build_simulator(sim_cfg), cache_config(sim_cfg, 0), {"train": 64, "val": 32, "test": 32},
                   cache, shard_size=32)
    shard = cache / f"{split}_00001.npz" if split == "train" else cache / f"{split}_00000.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    run = tmp_path / "run"
    p = cli("lensml.train", "model=baseline", "data=cache", "trainer.max_epochs=1", "data.n_train=64",
            "data.n_val=32", "data.n_test=32", "logger=csv", *FAST[:3], "trainer.enable_progress_bar=false",
            f"data.cache_dir={cache}", f"hydra.run.dir={run}", cwd=tmp_path, ok=False)  # 1 loader worker
    assert p.returncode == 2, p.stderr[-3000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("lensml: error:")]
    assert len(errors) == 1, p.stderr[-3000:]
    assert f"{shard.name} fails its sha256 check" in errors[0]
    # the command that re-renders it, with this run's physics overrides, sizes, folder and shard size
    cmd = errors[0].split("`")[1]
    assert cmd.startswith("python -m lensml.make_dataset ") and "instrument.n_pix=32" in cmd
    assert f"data.cache_dir={cache}" in cmd and "shard_size=32" in cmd
    fixed = cli(*cmd.split()[2:], f"hydra.run.dir={tmp_path / 'md'}", cwd=tmp_path)
    assert "make_dataset" in fixed.stderr and shard.read_bytes() != bytes(data)  # re-rendered
    assert "Traceback" not in p.stderr and "DataLoader worker" not in p.stderr
    assert "Epoch 0" not in p.stdout + p.stderr and not (run / "checkpoints").exists()


def _csv_epochs(path: Path, key: str) -> list[int]:
    import csv

    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [int(float(r["epoch"])) for r in csv.DictReader(fh) if r.get(key)]


def _sigkill_when(args: list[str], ready, cwd: Path, timeout_s: float = 240) -> None:
    """Run ``lensml.train args`` and SIGKILL it as soon as ``ready()`` is true (or it times out)."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "lensml.train", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + timeout_s
        while not ready() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL, "the run ended before it was killed"
    finally:
        proc.kill()


@pytest.mark.slow
def test_resume_after_two_sigkills_keeps_each_epoch_once(tmp_path):
    """SIGKILL a run, resume, SIGKILL the resumed run, resume: csv/metrics.csv holds every epoch once at each
    state on disk, and last.ckpt is the latest epoch, not the best (issue 11)."""
    from lensml.logging_setup import resumed_first_epoch

    run = tmp_path / "run"
    args = ["model=baseline", "data.n_train=64", "data.n_val=32", "data.n_test=32", "logger=csv", *FAST,
            f"hydra.run.dir={run}"]
    log, last = run / "csv" / "metrics.csv", run / "checkpoints" / "last.ckpt"
    _sigkill_when([*args, "trainer.max_epochs=100"], lambda: len(_csv_epochs(log, "val/auc")) >= 3, tmp_path)
    before = _csv_epochs(log, "val/auc")
    assert len(before) >= 3 and before == list(range(len(before))), before
    assert resumed_first_epoch(last) >= len(before) - 1  # last.ckpt: the latest epoch, not the best one
    # the resumed run replays the epoch the kill interrupted (its rows may already be in the file) and goes on
    _sigkill_when([*args, "trainer.max_epochs=100", "resume=true"],
                  lambda: max(_csv_epochs(log, "val/auc"), default=-1) >= len(before) + 1, tmp_path)
    val, train = _csv_epochs(log, "val/auc"), _csv_epochs(log, "train/loss_epoch")
    assert val == list(range(len(val))) and len(val) >= len(before) + 2, val  # each epoch once, in order
    assert len(train) == len(set(train)), train
    total = len(val) + 2
    cli("lensml.train", *args, f"trainer.max_epochs={total}", "resume=true", cwd=tmp_path)
    assert json.loads((run / "metrics.json").read_text())["epochs_trained"] == total
    # earlier epochs kept, the replayed one once (a later row may come from re-validating the best checkpoint)
    assert _csv_epochs(log, "val/auc")[:total] == list(range(total))
    train = _csv_epochs(log, "train/loss_epoch")
    assert len(train) == len(set(train)) and set(train) <= set(range(total)), train
    # Lightning logs an epoch's train/loss_epoch row after that epoch's checkpoint: a kill in that window
    # loses the one row (the resumed run starts at the next epoch); at most one per kill
    assert len(set(range(total)) - set(train)) <= 2, train


def test_make_dataset_with_smaller_sizes_keeps_the_finished_cache(tmp_path):
    """make_dataset 96 then 32 train samples: the 96 stay, no shard re-rendered or dropped (issue 11)."""
    cache = tmp_path / "cache"
    common = [*FAST[:3], f"data.cache_dir={cache}", "shard_size=32", "data.n_val=32", "data.n_test=32"]
    cli("lensml.make_dataset", "data.n_train=96", *common, f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    before = {p.name: p.read_bytes() for p in cache.glob("*.npz")}
    p = cli("lensml.make_dataset", "data.n_train=32", *common, f"hydra.run.dir={tmp_path}/b", cwd=tmp_path)
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["complete"] and manifest["counts"]["train"] == 96
    assert {p.name: p.read_bytes() for p in cache.glob("*.npz")} == before  # nothing re-rendered or dropped
    out = p.stdout + p.stderr
    assert "holds 96 train samples" in out and "overwrite=true" in out and "160/160" in out

"""Train and evaluate one model: ``python -m lensml.train [overrides]`` (see docs/training.md).

Composes ``conf/train.yaml``, validates it, instantiates data, model, logger and trainer, fits, scores the
best checkpoint on val and test and writes into the run dir:
``metrics.json`` (final val/test metrics, overall and per mass bin), ``test_predictions.npz`` (probs,
labels, mass_msun, sub_x/y_arcsec, index, source_id), ``checkpoints/{best-*,last}.ckpt``,
``resolved_config.yaml`` and the logger's files. ``run(cfg)`` does the same for a composed config (used
by studies and tests). Before any training step it checks every config key (unknown keys included) and, with
``data=cache``, the sha256 of every shard the run reads; a resumed run keeps the earlier rows of
``csv/metrics.csv``.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from lensml import __version__
from lensml.analysis.bootstrap import bootstrap_metric
from lensml.atomic_io import atomic_path, save_npz, write_json, write_text
from lensml.cli import clean_errors
from lensml.config_checks import check_train_config
from lensml.data.cache import SPLITS, CacheReader, cache_config, physics_config
from lensml.logging_setup import (
    configure_wandb_env,
    is_wandb,
    keep_earlier_csv_rows,
    log_wandb_panels,
    replayed_rows_callback,
    wandb_run_dir,
)
from lensml.make_dataset import make_dataset_command
from lensml.models.hardware import resolve_precision
from lensml.sim.simulator import build_simulator

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Local checkpoints through ``lensml.atomic_io``: temp name in the same folder, rename, umask mode.

    (Lightning's own writer stages the file in /tmp with mode 0600 and moves it, a copy across filesystems.)
    Remote URLs (``s3://...``) go through Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """Checkpoint to resume from: ``ckpt_path`` if set, else ``<run_dir>/checkpoints/last.ckpt`` if resume."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    if cfg.get("resume"):
        last = run_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            log.info("resuming from %s", last)
            return str(last)
        log.warning("resume=true but %s does not exist: starting from scratch", last)
    return None


def _hydra_info() -> dict[str, Any]:
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        return {
            "choices": {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")},
            "overrides": list(hc.overrides.task),
        }
    except ValueError:  # not running under @hydra.main
        return {"choices": {}, "overrides": []}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Validate, build, fit and score one run; return the metrics dict also written to ``metrics.json``.

    ``cfg`` is a composed ``conf/train.yaml``. Outside ``@hydra.main`` set ``run_dir`` yourself, e.g.
    ``compose("train", overrides=["run_dir=/tmp/run1", "model=baseline"])`` inside ``initialize_config_dir``.
    """
    t0 = time.time()
    hydra_info = _hydra_info()
    check_train_config(cfg, hydra_info["choices"])
    build_simulator(physics_config(cfg))  # physics keys checked now, not later inside a DataLoader worker
    check_cache(cfg, hydra_info["overrides"])  # every split's shards, before any training step
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)

    datamodule = instantiate(cfg.data, _partial_=True, _convert_="all")(sim_cfg=physics_config(cfg))
    net = instantiate(cfg.model.net, in_channels=datamodule.in_channels, _convert_="all")
    optimizer = instantiate(cfg.model.optimizer)
    module = instantiate(cfg.model.module, _convert_="all")(net=net, optimizer=optimizer)

    resumed_from = resume_checkpoint(cfg, run_dir)
    logger, earlier_csv = None, None
    if cfg.get("logger") is not None:
        if "Wandb" in str(cfg.logger._target_):
            configure_wandb_env(run_dir)
        logger = instantiate(cfg.logger)
        if resumed_from:
            # keep the killed run's rows; those of the epoch Lightning restores and later ones are dropped
            # when that epoch starts (the checkpoint's own count can be off by one at an epoch's end)
            earlier_csv = keep_earlier_csv_rows(logger, None)
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if earlier_csv:
        callbacks.append(replayed_rows_callback(logger))
    precision = resolve_precision(cfg.trainer.get("precision", "32-true"),
                                  str(cfg.trainer.get("accelerator")))
    trainer: pl.Trainer = instantiate(
        cfg.trainer, logger=logger if logger is not None else False, callbacks=callbacks,
        plugins=[AtomicCheckpointIO()], precision=precision,
    )

    trainer.fit(module, datamodule=datamodule, ckpt_path=resumed_from)

    ckpt_cb = trainer.checkpoint_callback
    best = getattr(ckpt_cb, "best_model_path", "") or None
    score_ckpt = best if (cfg.test_ckpt == "best" and best) else None
    # val metrics of the scored weights: recorded during fit, or recomputed (e.g. best epoch before a resume)
    if score_ckpt:
        scored_epoch = int(torch.load(score_ckpt, map_location="cpu", weights_only=False)["epoch"])
    else:
        scored_epoch = int(trainer.current_epoch) - 1
    val_metrics = module.val_history.get(scored_epoch)
    if val_metrics is None:
        trainer.validate(module, datamodule=datamodule, ckpt_path=score_ckpt, verbose=False)
        val_metrics = module.results.get("val")
    trainer.test(module, datamodule=datamodule, ckpt_path=score_ckpt, verbose=False)

    metrics: dict[str, Any] = {
        "model": cfg.model.name,
        "channels": cfg.data.channels,
        "seed": int(cfg.seed),
        "data_seed": int(cfg.data.seed),
        "mass_bin": OmegaConf.select(cfg, "subhalo.mass_bin", default=None),
        **hydra_info,
        "val": val_metrics,
        "test": module.results.get("test"),
        "epochs_trained": int(trainer.current_epoch),
        "resumed_from": resumed_from,
        "scored_checkpoint": score_ckpt or "final weights",
        "scored_epoch": scored_epoch,
        "best_checkpoint": best,
        "run_dir": str(run_dir),
        "package_version": __version__,
        "wall_time_s": round(time.time() - t0, 1),
    }
    if module.test_predictions is not None and metrics.get("test"):
        metrics["test"].update(test_intervals(module.test_predictions, int(cfg.seed)))
    if trainer.is_global_zero:
        if is_wandb(logger):
            log_wandb_panels(logger, "test", metrics["test"], module.examples)
            metrics["wandb_dir"] = wandb_run_dir(logger)
            logger.experiment.finish()
        write_text(run_dir / "resolved_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        if module.test_predictions is not None:
            save_npz(run_dir / "test_predictions.npz", **module.test_predictions)
        write_json(run_dir / "metrics.json", metrics)
        print(summary(metrics), flush=True)
    return metrics


def check_cache(cfg: DictConfig, overrides: list[str]) -> None:
    """``data=cache``: the cache matches the config and every shard the run reads passes its sha256 check.

    Raises ``DataError`` naming the shard and the ``make_dataset`` command that re-renders it.
    """
    if cfg.data.mode != "cache":
        return
    counts = {s: int(cfg.data[f"n_{s}"]) for s in SPLITS}
    config = cache_config(physics_config(cfg), int(cfg.data.seed))
    reader = CacheReader(cfg.data.cache_dir, config, counts, verify=True,
                         make_cmd=make_dataset_command(cfg, overrides))
    if cfg.data.get("verify_cache", True):
        log.info("cache %s: %d shards verified", cfg.data.cache_dir, reader.verify_shards(counts))


def test_intervals(preds: dict[str, np.ndarray], seed: int, n_boot: int = 1000) -> dict[str, Any]:
    """95 % stratified-bootstrap intervals of the test ROC AUC and recall at FPR 5 % (over test samples)."""
    probs, labels = np.asarray(preds["probs"], dtype=float), np.asarray(preds["labels"]).astype(int)
    if labels.min() == labels.max():
        return {}
    rng = np.random.default_rng([seed, 2])
    return {
        f"{name}_ci95": bootstrap_metric(probs, labels, metric, n_boot=n_boot, rng=rng)["ci"]
        for name, metric in (("auc", "auc"), ("recall_at_fpr5", "recall_at_fpr5"))
    }


def summary(metrics: dict[str, Any]) -> str:
    """The end-of-run block: val and test ROC AUC, recall at FPR 5 %, test AUC per mass bin."""

    def f(x: Any) -> str:
        return "  n/a" if x is None else f"{x:.3f}"

    head = f"model={metrics['model']} channels={metrics['channels']} seed={metrics['seed']}"
    lines = [f"==== lensml.train: {head} ===="]
    def ci(m: dict[str, Any], key: str) -> str:
        lo_hi = m.get(f"{key}_ci95")
        return f" [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if lo_hi else ""

    for split in ("val", "test"):
        m = metrics.get(split) or {}
        lines.append(
            f"{split:5s} ROC AUC = {f(m.get('auc'))}{ci(m, 'auc')}   "
            f"recall@FPR5% = {f(m.get('recall_at_fpr5'))}{ci(m, 'recall_at_fpr5')}   "
            f"recall@FPR1% = {f(m.get('recall_at_fpr1'))}   accuracy = {f(m.get('accuracy'))}   "
            f"(n={m.get('n')})"
        )
    bins = (metrics.get("test") or {}).get("per_mass_bin", {})
    cells = [f"{k}: {f(v['auc'])} (n_pos={v['n_pos']})" for k, v in bins.items() if v["n_pos"]]
    if cells:
        lines.append("test AUC per mass bin: " + ", ".join(cells))
    if (metrics.get("test") or {}).get("auc_ci95"):
        lines.append("[brackets: 95 % bootstrap intervals over test samples; other seeds: seed=1,2,...]")
    lines.append(f"run dir: {metrics['run_dir']}  (metrics.json, test_predictions.npz, checkpoints/)")
    if metrics.get("wandb_dir"):
        lines.append(f"W&B run: {metrics['wandb_dir']}  (upload later: wandb sync {metrics['wandb_dir']})")
    return "\n".join(lines)


def main_threads(cfg: DictConfig) -> int:
    """Main-process torch threads: ``num_threads``, or with ``auto`` the cores the data workers leave free."""
    n = cfg.get("num_threads", "auto")
    if n not in (None, "auto", 0):
        return max(1, int(n))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = int(cfg.data.num_workers) * max(1, int(cfg.data.worker_threads))
    return max(1, cores - workers)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@clean_errors
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the val AUC (objective for sweepers)."""
    torch.set_num_threads(main_threads(cfg))
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")  # Lightning 2.6 + torch 2.13
    metrics = run(cfg)
    return (metrics.get("val") or {}).get("auc")


if __name__ == "__main__":
    main()

"""Experiment-logger set-up: W&B offline by default, the ROC curve and an example-input panel.

W&B policy: if the user has not set ``WANDB_MODE``, lensml sets ``WANDB_MODE=offline`` so a run never tries
the network (no key and no network are fine); the run is written to ``<run dir>/wandb/offline-run-*`` and can
be uploaded later with ``wandb sync <that dir>``. ``WANDB_SILENT`` is set (unless set) and
``WANDB_DIR`` points at the run dir.

CSV logger on resume: Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it starts;
``keep_earlier_csv_rows`` puts back the earlier rows, and ``replayed_rows_callback`` drops those of the epoch
Lightning restores and later ones when the resumed run starts that epoch (they are logged again), so at every
moment, also after a second kill, each epoch is in the file once.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


#: W&B variables as the user set them before lensml touched the environment (None = unset)
_USER_WANDB_ENV = {k: os.environ.get(k) for k in ("WANDB_MODE", "WANDB_SILENT", "WANDB_DIR")}


def configure_wandb_env(run_dir: str | Path) -> str:
    """Set the W&B environment for a run in ``run_dir`` (user-set values win); return the effective mode.

    Called once per run, so in a sweep each job's ``WANDB_DIR`` is its own run dir.
    """
    defaults = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(run_dir)}
    for key, value in defaults.items():
        user = _USER_WANDB_ENV.get(key)
        os.environ[key] = user if user is not None else value
    Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)
    return os.environ["WANDB_MODE"]


def is_wandb(logger: Any) -> bool:
    try:
        from pytorch_lightning.loggers import WandbLogger
    except ImportError:  # pragma: no cover
        return False
    return isinstance(logger, WandbLogger)


def wandb_run_dir(logger: Any) -> str | None:
    """Local folder of the W&B run (what ``wandb sync`` takes), or None."""
    if not is_wandb(logger):
        return None
    run = logger.experiment
    d = getattr(run, "dir", None)  # <...>/wandb/offline-run-*/files
    return str(Path(d).parent) if d else None


def log_wandb_panels(
    logger: Any, split: str, metrics: dict[str, Any], examples: dict[str, np.ndarray] | None
) -> None:
    """Log the ROC curve, the per-mass-bin AUC table and a panel of example inputs with predictions."""
    if not is_wandb(logger):
        return
    import wandb

    run = logger.experiment
    roc = metrics.get("roc", {})
    if roc.get("fpr"):
        table = wandb.Table(columns=["fpr", "tpr"], data=[[f, t] for f, t in zip(roc["fpr"], roc["tpr"])])
        run.log({f"{split}/roc_curve": wandb.plot.line(table, "fpr", "tpr", title=f"{split} ROC")})
    cols = ["mass_bin", "n_pos", "auc", "recall_at_fpr5"]
    rows = [[k, v.get("n_pos"), v.get("auc"), v.get("recall_at_fpr5")]
            for k, v in metrics["per_mass_bin"].items()]
    run.log({f"{split}/per_mass_bin": wandb.Table(columns=cols, data=rows)})
    if examples:
        images = []
        for i in range(len(examples["label"])):
            img = np.concatenate(list(examples["x"][i]), axis=1)  # channels side by side
            caption = (
                f"label={int(examples['label'][i])} p={float(examples['prob'][i]):.2f} "
                f"M={float(examples['mass_msun'][i]):.2g}"
            )
            images.append(wandb.Image(_to_uint8(img), caption=caption))
        run.log({f"{split}/examples": images})


def _to_uint8(img: np.ndarray) -> np.ndarray:
    lo, hi = np.nanpercentile(img, [1, 99])
    return (np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)


def resumed_first_epoch(ckpt_path: str | Path | None) -> int | None:
    """The first epoch a run resumed from ``ckpt_path`` trains (epochs the checkpoint finished), or None.

    Lightning stores the fit loop's progress: ``processed`` counts the epochs whose batches all ran (a
    checkpoint saved after validation counts its epoch; one saved mid-epoch does not). Older checkpoints
    without it: their ``epoch`` (rows of that epoch are then logged again).
    """
    if not ckpt_path:
        return None
    import torch

    try:  # mmap: the tensors are not read
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # a file in torch's legacy (non-zip) format
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    try:
        return int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        return int(ckpt["epoch"]) if "epoch" in ckpt else None


def keep_earlier_csv_rows(logger: Any, first_epoch: int | None = None) -> tuple[Path, int] | None:
    """On resume, keep the rows already in ``<csv dir>/metrics.csv`` (Lightning's CSVLogger deletes the file).

    Rows of epochs >= ``first_epoch`` (the first epoch the resumed run trains, ``resumed_first_epoch``) are
    dropped: the resumed run logs them again. The rest are written back at once, so a second kill leaves each
    epoch once too. Returns (path, number of earlier rows), or None (not a CSV
    logger, no earlier file, or not rank 0).
    """
    from lightning_fabric.utilities.rank_zero import rank_zero_only
    from pytorch_lightning.loggers import CSVLogger

    if not isinstance(logger, CSVLogger) or rank_zero_only.rank != 0:
        return None
    path = Path(logger.log_dir) / "metrics.csv"
    rows = _read_csv_rows(path)
    if first_epoch is not None:
        rows = [r for r in rows if (e := _num(r.get("epoch"))) is None or e < first_epoch]
    if not rows:
        return None
    writer = logger.experiment  # creating the writer deletes the file
    writer.metrics = rows
    writer.save()
    return path, len(rows)


def drop_csv_rows_from_epoch(logger: Any, first_epoch: int) -> int:
    """Remove the rows of epochs >= ``first_epoch`` from a CSV logger's ``metrics.csv`` (atomically, same
    header, so the logger keeps appending); return the number removed. Called when a resumed run starts its
    first epoch, the epoch Lightning actually restored: rows of that epoch and later ones were written by the
    killed run and are logged again, so at every moment each epoch is in the file once."""
    from lensml.atomic_io import write_text

    writer = logger.experiment
    writer.save()
    path = Path(writer.metrics_file_path)
    if not path.is_file():
        return 0
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), list(reader)
    kept = [r for r in rows if (e := _num(r.get("epoch"))) is None or e < first_epoch]
    if len(kept) == len(rows):
        return 0
    buf = io.StringIO()
    out = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    out.writeheader()
    out.writerows(kept)
    write_text(path, buf.getvalue())
    return len(rows) - len(kept)


def replayed_rows_callback(logger: Any) -> Any:
    """A Lightning callback that calls ``drop_csv_rows_from_epoch`` once, at the first training epoch."""
    import pytorch_lightning as pl

    class DropReplayedCsvRows(pl.Callback):
        done = False

        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if not self.done and trainer.is_global_zero:
                self.done = True
                drop_csv_rows_from_epoch(logger, int(trainer.current_epoch))

    return DropReplayedCsvRows()


def _read_csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None

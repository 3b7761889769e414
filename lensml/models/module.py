"""``LensClassifier``: the LightningModule that trains either CNN as a 2-class subhalo detector.

Batches are dicts from ``lensml.data.dataset``: ``x`` (B, C, N, N) float32, ``label`` int64, ``mass_msun``,
``sub_x_arcsec``, ``sub_y_arcsec``, the subhalo metadata (``SUBHALO_METADATA_KEYS``: masses, tau, c200),
``index`` (sample index in its split) and ``source_id`` (list of str).
Loss: cross-entropy on the logits. Validation and test predictions are gathered over all processes
(duplicates that a distributed sampler adds are dropped by sample index), then scored by
``lensml.models.metrics.split_metrics`` once per epoch: overall and per subhalo-mass bin, the mass being the
sample field ``mass_key`` (config ``metrics.mass_key``, one of ``lensml.models.metrics.MASS_KEYS``).

Optimisation: the optimiser factory (``model.optimizer``, e.g. AdamW) and an optional per-step learning-rate
schedule (``lensml.models.schedule``: cosine with linear warm-up, or one-cycle). ``samples_seen`` counts the
training samples the network has stepped on (kept in checkpoints, logged as ``train/samples_seen`` and
recorded with every validation epoch). ``channels_last`` (``model.channels_last``: auto/true/false) runs the
network in the channels-last memory format (``lensml.models.hardware``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from lensml.errors import ConfigError
from lensml.models.hardware import describe, resolve_channels_last
from lensml.models.metrics import DEFAULT_MASS_EDGES_LOG10, MASS_KEYS, flat_scalars, split_metrics
from lensml.models.schedule import build_scheduler, check_schedule
from lensml.sim.simulator import SUBHALO_METADATA_KEYS

log = logging.getLogger(__name__)

_SOURCE_ID_BYTES = 32


class PredictionStore(Metric):
    """Accumulates per-sample predictions; ``compute`` returns them gathered over all processes."""

    full_state_update = False
    _FLOAT_KEYS = ("mass_msun", "sub_x_arcsec", "sub_y_arcsec", *SUBHALO_METADATA_KEYS)
    _FIELDS = ("probs", "labels", *_FLOAT_KEYS, "index", "source_code")

    def __init__(self) -> None:
        super().__init__()
        for name in self._FIELDS:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, batch: dict[str, Any]) -> None:  # type: ignore[override]
        self.probs.append(probs.detach().float())
        self.labels.append(batch["label"].detach().long())
        for key in self._FLOAT_KEYS:  # metadata a batch lacks (hand-made batches) is NaN
            value = batch.get(key)
            if value is None:
                value = torch.full_like(self.labels[-1], float("nan"), dtype=torch.float64)
            getattr(self, key).append(value.detach().double())
        self.index.append(batch["index"].detach().long())
        self.source_code.append(encode_source_ids(batch["source_id"], probs.device))

    def compute(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        out = {name: dim_zero_cat(getattr(self, name)).cpu().numpy() for name in self._FIELDS}
        _, first = np.unique(out["index"], return_index=True)  # drop sampler padding duplicates
        out = {k: v[first] for k, v in out.items()}
        out["source_id"] = decode_source_ids(out.pop("source_code"))
        return out


def encode_source_ids(ids: Sequence[str], device: torch.device | None = None) -> torch.Tensor:
    """Strings -> (B, 32) uint8 (UTF-8, zero padded, truncated to 32 bytes) so they can be gathered."""
    arr = np.zeros((len(ids), _SOURCE_ID_BYTES), dtype=np.uint8)
    for i, s in enumerate(ids):
        b = str(s).encode("utf-8")[:_SOURCE_ID_BYTES]
        arr[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
    return torch.from_numpy(arr).to(device) if device is not None else torch.from_numpy(arr)


def decode_source_ids(codes: np.ndarray) -> np.ndarray:
    """Inverse of ``encode_source_ids``: (B, 32) uint8 -> array of str."""
    rows = codes.reshape(len(codes), -1)
    return np.array([bytes(row).rstrip(b"\0").decode("utf-8", "replace") for row in rows])


class LensClassifier(pl.LightningModule):
    """Wraps a CNN (``BaselineCNN`` or ``DualStreamCNN``) with loss, optimiser and metrics.

    Args:
        net: the CNN, (B, C, N, N) -> (B, 2) logits.
        optimizer: factory ``params -> torch.optim.Optimizer`` (a Hydra ``_partial_``); default Adam lr 1e-3.
        mass_edges_log10: log10 M_sun edges of the per-mass-bin metrics.
        mass_key: the sample mass those bins use (``lensml.models.metrics.MASS_KEYS``; M200 by default).
        label_smoothing: of the cross-entropy loss.
        n_examples: number of test inputs kept for the logger's example panel.
        lr_schedule: ``none``, ``cosine`` (linear warm-up over ``warmup_frac`` of the steps, then cosine decay
            to ``min_lr_frac`` x lr) or ``onecycle`` (``torch.optim.lr_scheduler.OneCycleLR``, warm-up
            ``warmup_frac``); stepped every optimiser step over ``trainer.estimated_stepping_batches``.
        channels_last: channels-last memory format for the network and its inputs (``auto``: where bf16 is
            native, ``lensml.models.hardware``).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
        mass_edges_log10: Sequence[float] = DEFAULT_MASS_EDGES_LOG10,
        label_smoothing: float = 0.0,
        n_examples: int = 16,
        mass_key: str = "mass_msun",
        lr_schedule: str = "none",
        warmup_frac: float = 0.0,
        min_lr_frac: float = 0.0,
        channels_last: bool | str = False,
    ) -> None:
        super().__init__()
        check_schedule(lr_schedule, warmup_frac, min_lr_frac)
        if channels_last not in ("auto", True, False):
            raise ConfigError(f"model.channels_last={channels_last!r} must be auto, true or false")
        self.lr_schedule = lr_schedule
        self.warmup_frac, self.min_lr_frac = float(warmup_frac), float(min_lr_frac)
        self.channels_last_setting = channels_last
        self.channels_last = False
        #: training samples stepped on so far (restored from checkpoints)
        self.samples_seen = 0
        if mass_key not in MASS_KEYS:
            raise ConfigError(f"metrics.mass_key={mass_key!r} is unknown; use one of {list(MASS_KEYS)}.")
        self.mass_key = str(mass_key)
        self.save_hyperparameters(ignore=["net", "optimizer"])
        self.net = net
        self.optimizer_factory = optimizer or functools.partial(torch.optim.Adam, lr=1e-3)
        self.mass_edges_log10 = [float(e) for e in mass_edges_log10]
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.stores = nn.ModuleDict({"val": PredictionStore(), "test": PredictionStore()})
        self.n_examples = n_examples
        #: split -> output of ``split_metrics`` for the last completed epoch of that split
        self.results: dict[str, dict[str, Any]] = {}
        #: epoch -> validation ``split_metrics`` of that epoch (this process's fit only)
        self.val_history: dict[int, dict[str, Any]] = {}
        #: gathered test predictions (probs, labels, mass_msun, sub_x/y_arcsec, subhalo metadata, index,
        #: source_id)
        self.test_predictions: dict[str, np.ndarray] | None = None
        #: a few test inputs with labels and probabilities, for the example panel
        self.examples: dict[str, np.ndarray] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def setup(self, stage: str) -> None:
        accel = "cpu"
        if self._trainer is not None and "CUDA" in type(self.trainer.accelerator).__name__:
            accel = "gpu"
        self.channels_last = resolve_channels_last(self.channels_last_setting, accel)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self._trainer is not None and stage == "fit":
            log.info("compute: %s", describe(str(self.trainer.precision), self.channels_last, accel))

    def configure_optimizers(self) -> Any:
        opt = self.optimizer_factory(self.parameters())
        if self.lr_schedule == "none":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        sched = build_scheduler(opt, self.lr_schedule, total, self.warmup_frac, self.min_lr_frac)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["samples_seen"] = int(self.samples_seen)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.samples_seen = int(checkpoint.get("samples_seen", 0))

    def _step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch["x"])
        loss = self.loss_fn(logits, batch["label"])
        return loss, logits

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, logits = self._step(batch)
        acc = (logits.argmax(dim=1) == batch["label"]).float().mean()
        bs = batch["label"].shape[0]
        self.samples_seen += bs * max(1, int(self.trainer.world_size)) if self._trainer is not None else bs
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("train/accuracy", acc, on_step=False, on_epoch=True, batch_size=bs)
        self.log("train/samples_seen", float(self.samples_seen), on_step=True, on_epoch=False, batch_size=bs)
        return loss

    def _eval_step(self, split: str, batch: dict[str, Any], batch_idx: int) -> None:
        loss, logits = self._step(batch)
        probs = torch.softmax(logits.float(), dim=1)[:, 1]
        bs = batch["label"].shape[0]
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=split == "val", sync_dist=True, batch_size=bs)
        self.stores[split].update(probs, batch)
        if split == "test" and batch_idx == 0:
            k = min(self.n_examples, bs)
            self.examples = {
                "x": batch["x"][:k].detach().cpu().numpy(),
                "label": batch["label"][:k].cpu().numpy(),
                "prob": probs[:k].detach().cpu().numpy(),
                "mass_msun": batch["mass_msun"][:k].cpu().numpy(),
            }

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step("val", batch, batch_idx)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step("test", batch, batch_idx)

    def _eval_epoch_end(self, split: str) -> None:
        store = self.stores[split]
        if self.trainer.sanity_checking:
            store.reset()
            return
        preds = store.compute()
        store.reset()
        metrics = split_metrics(
            preds["probs"],
            preds["labels"],
            preds[self.mass_key],
            self.mass_edges_log10,
            mass_key=self.mass_key,
        )
        metrics["samples_seen"] = int(self.samples_seen)
        self.results[split] = metrics
        if split == "val" and not self.trainer.validating:
            self.val_history[int(self.current_epoch)] = metrics
        scalars = flat_scalars(metrics, split)
        scalars.setdefault(f"{split}/auc", float("nan"))  # keeps the checkpoint monitor defined
        scalars[f"{split}/samples_seen"] = float(self.samples_seen)
        # every process holds the same gathered numbers: no further reduction needed
        for key, value in scalars.items():
            self.log(key, value, prog_bar=key == "val/auc", sync_dist=False)
        if split == "test":
            self.test_predictions = preds

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

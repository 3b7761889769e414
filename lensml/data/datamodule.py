"""``LensDataModule``: train/val/test loaders of rendered samples, on the fly or from the cache.

Both modes share ``LensDataset``; only the sample source differs (``SimulatorSource`` or ``CacheSource``).
Built from ``conf/data/*.yaml`` by ``hydra.utils.instantiate`` (partial), then called with the physics
config (``sim_cfg``: the composed config holding source/lens/subhalo/noise/instrument/sim, resolved).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from lensml.data.augment import EpochSampler
from lensml.data.cache import CacheReader, cache_config
from lensml.data.channels import check_flux_norm, layout, n_channels, n_velocity_channels_of, needs_shuffle
from lensml.data.curriculum import Curriculum
from lensml.data.dataset import CacheSource, LensDataset, SimulatorSource, collate
from lensml.data.oracle import OracleResidualSource
from lensml.errors import ConfigError

log = logging.getLogger(__name__)

MODES = ("onthefly", "cache")


class _WorkerInit:
    """Limits torch threads in each DataLoader worker (rendering runs batch-parallel already)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __call__(self, worker_id: int) -> None:
        if self.threads > 0:
            torch.set_num_threads(self.threads)


class LensDataModule(pl.LightningDataModule):
    """Data of one run.

    Args:
        sim_cfg: config holding the physics groups (passed to ``build_simulator`` and hashed for the cache).
        mode: ``onthefly`` (render in the loaders) or ``cache`` (read ``cache_dir`` made by ``make_dataset``).
        n_train, n_val, n_test: samples per split.
        seed: data seed; sample i of split s is a pure function of (seed, s, i).
        channels: channel mode (``lensml.data.channels``; ``cube``: instrument.n_velocity_channels inputs).
        batch_size: training batch size; ``eval_batch_size`` for val/test (default: the same).
        num_workers: DataLoader workers (0 = render in the main process).
        worker_threads: torch threads per worker (0 = leave torch's default).
        velocity_scale_kms, flux_quantile: input normalisation (``lensml.data.channels``).
        flux_norm: ``peak`` (flux / per-image robust peak) or ``snr`` (flux / per-pixel noise sigma /
            ``flux_snr_scale``); sigma_v_ref_kms: velocity error of weight 1 in the weight channel (km/s).
        cache_dir: cache folder (mode ``cache``); verify_cache: check shard checksums on load.
        memory_cache: mode ``onthefly`` only: keep rendered samples in memory (per process) so later epochs
            reuse them (~37 kB per 64 x 64 sample and per worker that saw it); val/test only when streaming.
        stream: fresh training samples every epoch (epoch e: samples ``[e n_train, (e+1) n_train)``,
            so ``max_epochs x n_train`` distinct samples); val/test fixed. ``mode=cache`` cycles the cache.
        augment: random (deterministic per (seed, epoch, index)) D4 rotation/reflection of training inputs.
        (Both: ``lensml.data.augment``.)
        curriculum: ``data.curriculum`` mapping (``lensml.data.curriculum``): training priors annealed from an
            easy task to the target over a fraction of the epochs; mode ``onthefly`` only.
        oracle_residual: feed (data - true smooth model) / sigma in place of flux and velocity
            (``lensml.data.oracle``): the upper bound of a detector that knew the macro model.
    """

    def __init__(
        self,
        sim_cfg: Any,
        mode: str = "onthefly",
        n_train: int = 4096,
        n_val: int = 512,
        n_test: int = 1024,
        seed: int = 0,
        channels: str = "flux_velocity",
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        worker_threads: int = 1,
        persistent_workers: bool = True,
        pin_memory: bool = False,
        velocity_scale_kms: float = 300.0,
        flux_quantile: float = 0.995,
        cache_dir: str = "data/sim_dataset",
        verify_cache: bool = True,
        memory_cache: bool = True,
        flux_norm: str = "peak",
        flux_snr_scale: float = 30.0,
        sigma_v_ref_kms: float = 10.0,
        stream: bool = False,
        augment: bool = False,
        curriculum: dict[str, Any] | None = None,
        oracle_residual: bool = False,
    ) -> None:
        super().__init__()
        for key, value in (("stream", stream), ("augment", augment), ("oracle_residual", oracle_residual)):
            if not isinstance(value, bool):
                raise ConfigError(f"data.{key}={value!r} must be true or false")
        self.oracle_residual = oracle_residual
        bad = mode != "onthefly" or needs_shuffle(channels) or (curriculum or {}).get("enabled")
        if self.oracle_residual and (bad or "cube" in layout(channels).channels):
            raise ConfigError("data.oracle_residual=true needs data=onthefly, an unshuffled data.channels "
                              "mode other than cube and data.curriculum.enabled=false")
        self.curriculum = Curriculum.from_cfg(curriculum)
        if self.curriculum.enabled and mode != "onthefly":
            raise ConfigError("data.curriculum.enabled=true needs data=onthefly (a cache holds the target "
                              "priors only); set data.curriculum.enabled=false or use data=onthefly")
        self.stream = stream
        self.augment = augment
        if mode not in MODES:
            raise ConfigError(f"data.mode={mode!r} is unknown; use one of {MODES}")
        self.in_channels = n_channels(channels, n_velocity_channels_of(sim_cfg))
        self.flux_norm = check_flux_norm(flux_norm)
        self.flux_snr_scale = float(flux_snr_scale)
        self.sigma_v_ref_kms = float(sigma_v_ref_kms)
        self.sim_cfg = sim_cfg
        self.mode = mode
        self.counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
        self.seed = int(seed)
        self.channels = channels
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.worker_threads = int(worker_threads)
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.pin_memory = bool(pin_memory)
        self.velocity_scale_kms = float(velocity_scale_kms)
        self.flux_quantile = float(flux_quantile)
        self.cache_dir = cache_dir
        self.verify_cache = bool(verify_cache)
        self.memory_cache = bool(memory_cache) and mode == "onthefly"
        self.datasets: dict[str, LensDataset] = {}

    def make_source(self) -> SimulatorSource | CacheSource | OracleResidualSource:
        """The sample source of the configured mode (the cache is validated here)."""
        if self.mode == "cache":
            reader = CacheReader(
                self.cache_dir, cache_config(self.sim_cfg, self.seed), self.counts, verify=self.verify_cache
            )
            return CacheSource(reader)
        if self.oracle_residual:
            return OracleResidualSource(self.sim_cfg, self.seed)
        return SimulatorSource(self.sim_cfg, self.seed, self.curriculum)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        trainer = getattr(self, "trainer", None)
        if self.curriculum.enabled and self.curriculum.total_epochs is None and trainer is not None:
            self.curriculum = dataclasses.replace(self.curriculum, total_epochs=int(trainer.max_epochs))
        source = self.make_source()
        for split, n in self.counts.items():
            self.datasets[split] = LensDataset(
                source, split, n, self.seed, self.channels, self.velocity_scale_kms, self.flux_quantile,
                memory_cache=self.memory_cache, flux_norm=self.flux_norm, flux_snr_scale=self.flux_snr_scale,
                sigma_v_ref_kms=self.sigma_v_ref_kms, stream=self.stream, cycle=self.mode == "cache",
                augment=self.augment, oracle_residual=self.oracle_residual,
            )
        log.info("data: mode=%s channels=%s flux_norm=%s counts=%s seed=%d stream=%s augment=%s", self.mode,
                 self.channels, self.flux_norm, self.counts, self.seed, self.stream, self.augment)
        if self.curriculum.enabled:
            c = self.curriculum
            log.info("curriculum: %d stages over the first %.0f%% of %d epochs; subhalo mass from %s M_sun, "
                     "nuisance prior width from %.2f x target; validation and test on the target priors",
                     c.stages, 100 * c.frac, c.total_epochs, list(c.mass_range_msun or []) or "target",
                     c.nuisance_width)
        if self.stream and self.mode == "cache":
            log.warning("data.stream=true with data=cache: the cache holds %d training samples; streaming "
                        "cycles them (epoch e reads the same samples as epoch 0%s). Use data=onthefly for "
                        "fresh samples every epoch.", self.counts["train"],
                        ", with other D4 transforms" if self.augment else "")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        # training: stream positions epoch * n_train + j in a (seed, epoch) order (lensml.data.augment)
        sampler = None
        if shuffle:
            trainer = getattr(self, "trainer", None)
            world, rank = (1, 0) if trainer is None else (int(trainer.world_size), int(trainer.global_rank))
            sampler = EpochSampler(self.counts["train"], self.seed, num_replicas=world, rank=rank)
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            worker_init_fn=_WorkerInit(self.worker_threads) if self.num_workers > 0 else None,
            persistent_workers=self.persistent_workers,
            pin_memory=self.pin_memory,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

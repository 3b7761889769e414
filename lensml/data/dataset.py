"""``LensDataset``: samples of one split as CNN-ready batches, from the simulator or from the cache.

One code path for both modes: a *sample source* returns raw samples (the ``lensml.sim.simulator`` dict) for
indices of a split; the dataset selects the channels (``lensml.data.channels``), including the shuffled
velocity pairing (velocity, mask and sigma_v of sample ``perm(i)`` together), and normalises them. Sample
``i`` of split ``s`` is a pure function of ``(seed, s, i)`` in both modes, whatever the worker, batch or
process that asks for it.

The training split is indexed by *stream positions* ``p = epoch * n + j`` (``lensml.data.augment``): sample
``p`` in streaming mode (fresh samples every epoch; a cache is cycled, sample ``p mod n``), sample ``p mod n``
otherwise; the optional D4 augmentation is a pure function of ``(seed, p)``. Validation and test are indexed
by sample index and never augmented.

``__getitems__`` renders a whole batch with ONE ``sample_batch`` call (the DataLoader calls it with the
batch's indices); ``collate`` then passes the ready batch dict through. Batch dict:
``x`` (B, C, N, N) float32, ``label`` int64, ``mass_msun`` float64, ``sub_x_arcsec``, ``sub_y_arcsec``
float64 (NaN if no subhalo), the subhalo metadata ``SUBHALO_METADATA_KEYS`` float64 (masses, tau, c200;
``lensml.sim.simulator``), ``index`` int64 (sample index in the split), ``source_id`` list[str].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from lensml.data.augment import apply_d4, d4_codes, d4_positions
from lensml.data.cache import CacheReader
from lensml.data.channels import VELOCITY_KEYS, InputNorm, needs_shuffle, shuffle_permutation, stack_sample
from lensml.data.curriculum import Curriculum
from lensml.data.oracle import stack_residuals
from lensml.sim.simulator import SUBHALO_METADATA_KEYS


class SampleSource(Protocol):
    """Anything that returns raw samples (simulator contract dict) for indices of a split."""

    def get(self, split: str, indices: np.ndarray, n: int) -> dict[str, np.ndarray]: ...


class SimulatorSource:
    """Renders samples on the fly; the simulator is built lazily in each process (workers included).

    ``curriculum`` (``lensml.data.curriculum``): training samples of epoch e come from the stage simulator
    of that epoch (``get_stage``); one simulator per stage, built when first needed.
    """

    def __init__(self, sim_cfg: Any, seed: int, curriculum: Curriculum | None = None) -> None:
        self.sim_cfg = sim_cfg
        self.seed = int(seed)
        self.curriculum = curriculum if curriculum is not None and curriculum.enabled else None
        self._sim = None
        self._stage_sims: dict[float, Any] = {}

    @property
    def simulator(self):  # noqa: ANN201 - lensml.sim.simulator.Simulator
        if self._sim is None:
            from lensml.sim import simulator as sim_mod

            self._sim = sim_mod.build_simulator(self.sim_cfg)
        return self._sim

    def get(self, split: str, indices: np.ndarray, n: int) -> dict[str, np.ndarray]:
        return self.simulator.sample_batch(self.seed, split, [int(i) for i in indices])

    def get_stage(self, split: str, indices: np.ndarray, n: int, epoch: int) -> dict[str, np.ndarray]:
        """Samples of ``split`` as rendered at training epoch ``epoch`` (the curriculum's stage)."""
        t = 1.0 if self.curriculum is None or split != "train" else self.curriculum.progress(epoch)
        if t >= 1.0:
            return self.get(split, indices, n)
        if t not in self._stage_sims:
            from lensml.sim import simulator as sim_mod

            self._stage_sims[t] = sim_mod.build_simulator(self.curriculum.stage_config(self.sim_cfg, t))
        return self._stage_sims[t].sample_batch(self.seed, split, [int(i) for i in indices])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_sim"] = None
        state["_stage_sims"] = {}
        return state


class CacheSource:
    """Reads samples from a validated ``CacheReader``."""

    def __init__(self, reader: CacheReader) -> None:
        self.reader = reader

    def get(self, split: str, indices: np.ndarray, n: int) -> dict[str, np.ndarray]:
        return self.reader.get(split, indices, n)


class LensDataset(Dataset):
    """Samples ``0 .. n-1`` of ``split`` with channels ``channels`` (see ``lensml.data.channels``).

    Args:
        source: where raw samples come from (``SimulatorSource`` or ``CacheSource``).
        split: ``train``, ``val`` or ``test``.
        n: number of samples in this split.
        seed: data seed (fixes the samples and the velocity shuffle).
        channels: channel mode.
        velocity_scale_kms: fixed velocity normalisation (km/s).
        flux_quantile: quantile used as the per-sample flux peak (``flux_norm="peak"``).
        flux_norm, flux_snr_scale, sigma_v_ref_kms: flux units and weight scale (``lensml.data.channels``).
        memory_cache: keep rendered samples in memory (per process) so later epochs do not re-render them;
            the samples are the same either way (pure functions of (seed, split, i)). Ignored for a streamed
            training split (no sample comes back, the memory would only grow).
        stream: training split only: position p is sample p (fresh samples every epoch) instead of p mod n.
        cycle: with ``stream``, sample p mod n (a cache holds only n samples: it is cycled).
        augment: training split only: D4 transform of each input, a pure function of (seed, p).
        oracle_residual: build the input from the residuals about the true smooth model
            (``lensml.data.oracle``; the source must be an ``OracleResidualSource``).
    """

    def __init__(
        self,
        source: SampleSource,
        split: str,
        n: int,
        seed: int,
        channels: str = "flux_velocity",
        velocity_scale_kms: float = 300.0,
        flux_quantile: float = 0.995,
        memory_cache: bool = False,
        flux_norm: str = "peak",
        flux_snr_scale: float = 30.0,
        sigma_v_ref_kms: float = 10.0,
        stream: bool = False,
        cycle: bool = False,
        augment: bool = False,
        oracle_residual: bool = False,
    ) -> None:
        self.source = source
        self.oracle_residual = bool(oracle_residual)  # source gives lensml.data.oracle.RESIDUAL_KEYS
        train = split == "train"
        self.stream = bool(stream) and train
        self.cycle = bool(cycle) and self.stream
        self.augment = bool(augment) and train
        self.curriculum = train and getattr(source, "curriculum", None) is not None
        streamed = self.stream and not self.cycle
        self.memory_cache = bool(memory_cache) and not streamed and not self.curriculum
        self._epoch = 0  # epoch of the batch being assembled (curriculum stage)
        self._memo: dict[int, dict[str, Any]] = {}
        self.split = split
        self.n = int(n)
        self.seed = int(seed)
        self.channels = channels
        self.norm = InputNorm(float(velocity_scale_kms), float(flux_quantile), flux_norm,
                              float(flux_snr_scale), float(sigma_v_ref_kms))
        self.perm = shuffle_permutation(seed, split, self.n) if needs_shuffle(channels) else None

    def __len__(self) -> int:
        return self.n

    def _get(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        if self.curriculum:
            return self.source.get_stage(self.split, idx, self.n, self._epoch)
        if not self.memory_cache:
            return self.source.get(self.split, idx, self.n)
        missing = np.array([i for i in dict.fromkeys(idx.tolist()) if i not in self._memo], dtype=np.int64)
        if len(missing):
            data = self.source.get(self.split, missing, self.n)
            for row, i in enumerate(missing.tolist()):
                self._memo[i] = {k: np.asarray(v)[row] for k, v in data.items()}
        rows = [self._memo[i] for i in idx.tolist()]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

    def sample_index(self, positions: np.ndarray) -> np.ndarray:
        """Sample indices of stream positions (identity outside the training split; module docstring)."""
        p = np.asarray(positions, dtype=np.int64)
        if self.split != "train" or (self.stream and not self.cycle):
            return p
        return p % self.n

    def raw(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Raw samples (simulator dict) for sample ``indices``; in the shuffle modes the ``VELOCITY_KEYS``
        (velocity, mask, sigma_v_kms) are those of sample ``perm[i]`` (streaming: ``perm`` applied within each
        block of n samples), every other key that of sample i."""
        idx = np.asarray(indices, dtype=np.int64)
        limit = np.inf if self.stream and not self.cycle else self.n
        if np.any((idx < 0) | (idx >= limit)):
            raise IndexError(f"index out of range for {self.split} split of {self.n} samples")
        if self.perm is None:
            return self._get(idx)
        vel_idx = (idx // self.n) * self.n + self.perm[idx % self.n]
        both, inverse = np.unique(np.concatenate([idx, vel_idx]), return_inverse=True)
        data = self._get(both)
        out = {k: np.asarray(v)[inverse[: len(idx)]] for k, v in data.items()}
        for key in VELOCITY_KEYS:
            if key in data:
                out[key] = np.asarray(data[key])[inverse[len(idx):]]
        return out

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        """The batch of (training: stream) positions ``indices`` (module docstring)."""
        pos = np.asarray(indices, dtype=np.int64)
        if self.split == "train" and not self.stream and np.any(pos < 0):
            raise IndexError(f"negative position in the {self.split} split")
        idx = self.sample_index(pos)
        if self.curriculum:
            epochs = np.unique(pos // self.n) if len(pos) else np.zeros(1, np.int64)
            if len(epochs) > 1:
                raise ValueError(f"a curriculum batch spans epochs {epochs.tolist()}; "
                                 "batch one epoch at a time")
            self._epoch = int(epochs[0])
        data = self.raw(idx)
        if self.oracle_residual:
            x = stack_residuals(self.channels, data, self.norm.sigma_v_ref_kms)
        else:
            x = stack_sample(self.channels, data, self.norm)
        sub_x, sub_y = np.asarray(data["sub_x_arcsec"]), np.asarray(data["sub_y_arcsec"])
        if self.augment:
            codes = d4_codes(self.seed, pos)
            x = apply_d4(x, codes)
            sub_x, sub_y = d4_positions(sub_x, sub_y, codes)
        return {
            "x": torch.from_numpy(np.ascontiguousarray(x)),
            "label": torch.as_tensor(np.asarray(data["label"]), dtype=torch.long),
            "mass_msun": torch.as_tensor(np.asarray(data["mass_msun"]), dtype=torch.float64),
            "sub_x_arcsec": torch.as_tensor(sub_x, dtype=torch.float64),
            "sub_y_arcsec": torch.as_tensor(sub_y, dtype=torch.float64),
            **{
                key: torch.as_tensor(np.asarray(data[key]), dtype=torch.float64)
                for key in SUBHALO_METADATA_KEYS
            },
            "index": torch.from_numpy(idx.copy()),
            "source_id": [str(s) for s in np.asarray(data["source_id"])],
        }

    def __getitem__(self, i: int) -> dict[str, Any]:
        batch = self.__getitems__([i])
        return {k: v[0] for k, v in batch.items()}


def collate(batch: Any) -> Any:
    """DataLoader ``collate_fn``: a ``__getitems__`` batch dict passes through; a sample list is stacked."""
    if isinstance(batch, dict):
        return batch
    return default_collate(batch)

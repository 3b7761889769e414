"""Training-set streaming order and label-preserving augmentation (the symmetries of the square pixel grid).

Conventions (stated once, here):

- **Stream positions.** The training sampler (``EpochSampler``) yields *stream positions*
  ``p = epoch * n_train + j`` (``j`` in ``0 .. n_train-1``, in an order that is a pure function of
  ``(seed, epoch)``), so every batch carries its epoch (``p // n_train``) into the DataLoader workers, even
  persistent ones. The dataset maps a position to a sample index: ``p`` itself in streaming mode
  (``data.stream=true``: epoch e trains on samples ``[e n, (e+1) n)``, ``max_epochs x n_train``
  distinct samples in all), ``p mod n_train`` otherwise (the same ``n_train`` samples every epoch; also
  streaming from a cache, which cycles the cache). Lightning calls ``set_epoch`` with the restored epoch
  on resume, so a resumed run continues the stream where it stopped.
- **D4 augmentation** (``data.augment=true``): each training input is replaced by one of the 8 rotations /
  reflections of the square grid, ``k = d4_codes(seed, p)`` in ``0..7``: ``np.rot90`` by ``k mod 4`` quarter
  turns (axes (-2, -1)), then a flip of the last axis if ``k >= 4``. The same transform is applied to every
  channel of a sample (flux, velocity, mask, weight), so the channels stay paired, and is a pure function of
  ``(seed, epoch, j)`` through ``p``. It is exact (no interpolation) and label-preserving: a rotated or
  mirrored lens system is another valid lens system. The velocity channel is the *line-of-sight* velocity, a
  scalar field on the sky: rotating or reflecting the sky plane does not change the line of sight, so each
  pixel keeps its value (a mirrored rotating disk is a disk rotating the other way, equally likely under the
  priors). The priors are (close to) invariant: position angles are uniform over 360 deg, the ellipticity and
  shear components are drawn independently with the same symmetric law, the centre offsets from square boxes;
  the PSF is circular. Subhalo positions in the batch (``sub_x/y_arcsec``) are transformed with the image.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import DistributedSampler

_ORDER_TAG = 0x0D4E5
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, element-wise on uint64 (a good 64-bit hash of a counter)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def d4_codes(seed: int, positions: np.ndarray) -> np.ndarray:
    """The D4 element (int64 in 0..7) of each stream position, a pure function of ``(seed, position)``."""
    p = np.asarray(positions, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = _splitmix64(_splitmix64(np.uint64(int(seed) & 0xFFFFFFFF) ^ np.uint64(_ORDER_TAG)) ^ p)
    return (h >> np.uint64(61)).astype(np.int64)


def apply_d4(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Transform each image stack ``x[b]`` (B, C, N, N) by D4 element ``codes[b]`` (same for all channels)."""
    out = np.empty_like(x)
    for b, k in enumerate(np.asarray(codes, dtype=np.int64)):
        y = np.rot90(x[b], int(k) % 4, axes=(-2, -1))
        out[b] = y[..., ::-1] if k >= 4 else y
    return out


def d4_positions(
    x_arcsec: np.ndarray, y_arcsec: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions moved with ``apply_d4`` (grid centred on (0, 0), column = +x, row = +y).

    Rows follow y, columns x (``lensml.sim.instrument.image_coordinates``). A quarter turn of
    ``np.rot90`` (axes (-2, -1)) moves pixel (row r, col c) to (N-1-c, r), i.e. (x, y) -> (y, -x); the
    flip of the last axis maps x -> -x. NaN (no subhalo) stays NaN.
    """
    x, y = np.asarray(x_arcsec, dtype=np.float64).copy(), np.asarray(y_arcsec, dtype=np.float64).copy()
    k = np.asarray(codes, dtype=np.int64)
    for _ in range(3):
        turn = (k % 4) > _
        x, y = np.where(turn, y, x), np.where(turn, -x, y)
    x = np.where(k >= 4, -x, x)
    return x, y


class EpochSampler(DistributedSampler):
    """Training sampler over stream positions ``epoch * n + j`` (module docstring).

    ``shuffle``: the order of ``j`` within an epoch is a permutation drawn from ``(seed, epoch)`` (else
    ``0 .. n-1``). ``set_epoch`` is called by Lightning before each training epoch (with the restored
    epoch on resume). With ``num_replicas`` > 1 (DDP) process ``rank`` takes every ``num_replicas``-th
    position of the epoch's order (padded by wrapping to equal lengths, as ``DistributedSampler``); being a
    ``DistributedSampler``, Lightning neither wraps it nor replaces it, and sets its epoch.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, num_replicas: int = 1, rank: int = 0) -> None:
        # no DistributedSampler.__init__: it needs a dataset and a process group; the fields below suffice
        self.n, self.seed, self.shuffle = int(n), int(seed), bool(shuffle)
        self.num_replicas, self.rank, self.epoch = int(num_replicas), int(rank), 0
        self.num_samples = -(-self.n // self.num_replicas)
        self.total_size, self.drop_last = self.num_samples * self.num_replicas, False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """Stream positions of ``epoch`` in the order they are yielded (all processes together)."""
        j = (np.random.default_rng([self.seed, int(epoch), _ORDER_TAG]).permutation(self.n)
             if self.shuffle else np.arange(self.n))
        return int(epoch) * self.n + j

    def __iter__(self) -> Iterator[int]:
        pos = self.order(self.epoch)
        pos = np.resize(pos, self.total_size)  # wrap-around padding (no-op with one process)
        return iter(pos[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

"""Channel modes and input normalisation: rendered samples -> the CNN input tensor.

Conventions (stated once, here):

- Channel modes (``data.channels``):

  ==========================  ========  =========================================================
  mode                        channels  content
  ==========================  ========  =========================================================
  ``flux``                    1         flux only
  ``velocity``                1         velocity only
  ``flux_velocity``           2         flux, velocity of the same sample (the physical pairing)
  ``flux_shuffled_velocity``  2         flux of sample i, velocity of sample ``perm(i)`` of the same
                                        split: the ablation that destroys the flux-velocity pairing
  ==========================  ========  =========================================================

- ``perm`` is a derangement of ``range(n)`` (no sample keeps its own velocity map), a pure function of
  ``(seed, split, n)``; it is the same in the on-the-fly and the cache mode.
- Flux is divided by its per-sample robust peak (the ``flux_quantile`` quantile of the map, default 0.995,
  floored at 1e-12), so it is dimensionless with peak ~1. Velocity (km/s) is divided by a fixed scale
  ``velocity_scale_kms`` (default 300 km/s) taken from the config, so it keeps its physical amplitude.
"""

from __future__ import annotations

import numpy as np

from lensml.errors import ConfigError
from lensml.sim.simulator import SPLIT_CODES

#: channel mode -> number of input channels
CHANNEL_MODES: dict[str, int] = {
    "flux": 1,
    "velocity": 1,
    "flux_velocity": 2,
    "flux_shuffled_velocity": 2,
}

#: extra entropy word that separates the shuffle permutation stream from the sample streams
_SHUFFLE_TAG = 0x5EED5


def n_channels(mode: str) -> int:
    """Number of input channels of a channel mode (``ConfigError`` naming ``data.channels`` if unknown)."""
    if mode not in CHANNEL_MODES:
        raise ConfigError(
            f"data.channels={mode!r} is unknown; use one of {sorted(CHANNEL_MODES)} (e.g. data.channels=flux)"
        )
    return CHANNEL_MODES[mode]


def needs_shuffle(mode: str) -> bool:
    """True if the mode pairs each flux map with another sample's velocity map."""
    return mode == "flux_shuffled_velocity"


def shuffle_permutation(seed: int, split: str, n: int) -> np.ndarray:
    """Derangement ``perm`` of ``range(n)`` (int64): sample i takes the velocity of sample ``perm[i]``.

    Pure function of (seed, split, n). Built as a random cyclic order: ``perm[order[k]] = order[k+1]``.
    For n == 1 the only permutation is the identity (nothing to shuffle with).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_CODES[split], _SHUFFLE_TAG, int(n)]))
    order = rng.permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return perm


def normalise_flux(flux: np.ndarray, quantile: float = 0.995) -> np.ndarray:
    """Flux (B, N, N) divided by its per-sample ``quantile`` (robust peak); float32, dimensionless."""
    b = flux.shape[0]
    scale = np.quantile(flux.reshape(b, -1), quantile, axis=1)
    scale = np.maximum(scale, 1e-12).astype(np.float32)
    return (flux / scale[:, None, None]).astype(np.float32)


def normalise_velocity(velocity_kms: np.ndarray, scale_kms: float) -> np.ndarray:
    """Velocity (B, N, N) in km/s divided by the fixed ``scale_kms``; float32, dimensionless."""
    return (velocity_kms / np.float32(scale_kms)).astype(np.float32)


def stack_channels(
    mode: str,
    flux: np.ndarray,
    velocity_kms: np.ndarray,
    velocity_scale_kms: float,
    flux_quantile: float = 0.995,
) -> np.ndarray:
    """Build the (B, C, N, N) float32 CNN input for ``mode``.

    ``velocity_kms`` must already be the map paired with each flux map (the shuffled one for
    ``flux_shuffled_velocity``): the caller fetches sample ``perm[i]`` for it.
    """
    n_channels(mode)
    parts = []
    if mode != "velocity":
        parts.append(normalise_flux(flux, flux_quantile))
    if mode != "flux":
        parts.append(normalise_velocity(velocity_kms, velocity_scale_kms))
    return np.stack(parts, axis=1)

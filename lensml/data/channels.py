"""Channel modes and input normalisation: rendered samples -> the CNN input tensor.

Conventions (stated once, here):

- Channel modes (``data.channels``); channels in the order listed, flux (when present) always first:

  =================================  ==  ===========================================================
  mode                               C   content
  =================================  ==  ===========================================================
  ``flux``                           1   flux only
  ``velocity``                       1   velocity only
  ``mask``                           1   the validity mask only (ablation: what the mask's outline alone
                                         tells; with ``noise.mask_from=observed`` it is a thresholded image)
  ``flux_mask``                      2   flux, mask (the outline made explicit beside the image)
  ``flux_velocity``                  2   flux, velocity of the same sample (the physical pairing)
  ``flux_shuffled_velocity``         2   flux of sample i, velocity of sample ``perm(i)`` of the same
                                         split: the ablation that destroys the flux-velocity pairing
  ``velocity_mask``                  2   velocity, mask
  ``velocity_weight``                3   velocity, mask, weight
  ``flux_velocity_mask``             3   flux, velocity, mask
  ``flux_velocity_weight``           4   flux, velocity, mask, weight
  ``flux_shuffled_velocity_mask``    3   as ``flux_velocity_mask``; velocity and mask of ``perm(i)``
  ``flux_shuffled_velocity_weight``  4   as ``flux_velocity_weight``; velocity, mask and weight of
                                         ``perm(i)``
  ``cube``                           V   the IFU cube's V = ``instrument.n_velocity_channels`` slices
                                         (sample key ``cube``, ``lensml.sim.cube``), noisy, early fusion
  =================================  ==  ===========================================================

  The seed's four modes are ``flux``, ``velocity``, ``flux_velocity``, ``flux_shuffled_velocity``, unchanged.
  Names: ``flux``, ``mask``, ``flux_mask`` or ``[flux_[shuffled_]]velocity[_mask|_weight]``.

- ``mask`` is the sample's validity mask as 0/1 float32: it tells "masked" (0) apart from a measured velocity
  of 0 km/s (1). ``weight`` is the per-pixel inverse variance of the velocity in units of a fixed reference
  error: ``weight = (sigma_v_ref_kms / sigma_v_kms)^2`` inside the mask, 0 outside, capped at
  ``WEIGHT_MAX`` = 100 (i.e. sigma_v floored at sigma_v_ref / 10; inactive when the simulator's velocity error
  floor exceeds that). ``sigma_v_ref_kms`` (``data.sigma_v_ref_kms``, default 10 km/s) makes it
  dimensionless and O(1): a pixel measured to 10 km/s has weight 1, one measured to 100 km/s has 0.01.
- Cube (``cube``): all slices divided by one per-sample robust peak, the ``flux_quantile`` quantile of the
  sample's voxels (floored at 1e-12): the slices keep their relative brightness (the line profile).
  ``data.flux_norm=snr`` is not defined for it (no per-voxel sigma key).
- Shuffled modes: ``velocity``, ``mask`` and ``sigma_v_kms`` (hence the weight) all come from sample
  ``perm(i)`` (one permutation, ``VELOCITY_KEYS``); flux, ``flux_sigma`` and the label stay with sample i.
  ``perm`` is a derangement of ``range(n)`` (no sample keeps its own velocity map), a pure function of
  ``(seed, split, n)``; it is the same in the on-the-fly and the cache mode.
- Flux (``data.flux_norm``): ``peak`` (default) divides the map by its per-sample robust peak (the
  ``flux_quantile`` quantile, default 0.995, floored at 1e-12), dimensionless with peak ~1. ``snr`` divides
  each pixel by its noise sigma (``flux_sigma``, same flux units) and by a fixed ``flux_snr_scale``
  (``data.flux_snr_scale``, default 30, a typical peak S/N of the nominal noise preset): the input is the
  per-pixel S/N / 30, so a peak-S/N-30 image has peak ~1 and fainter exposures stay fainter.
- Velocity (km/s) is divided by a fixed scale ``velocity_scale_kms`` (default 300 km/s) from the config, so
  it keeps its physical amplitude.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lensml.errors import ConfigError
from lensml.sim.simulator import SPLIT_CODES


@dataclass(frozen=True)
class ChannelLayout:
    """What a channel mode stacks: channel names in order (from ``flux``, ``velocity``, ``mask``,
    ``weight``) and whether the velocity-side channels come from the shuffled partner sample."""

    channels: tuple[str, ...]
    shuffled: bool = False


#: channel mode -> its layout (the table in the module docstring)
CHANNEL_LAYOUTS: dict[str, ChannelLayout] = {
    "flux": ChannelLayout(("flux",)),
    "velocity": ChannelLayout(("velocity",)),
    "mask": ChannelLayout(("mask",)),
    "flux_mask": ChannelLayout(("flux", "mask")),
    "flux_velocity": ChannelLayout(("flux", "velocity")),
    "flux_shuffled_velocity": ChannelLayout(("flux", "velocity"), shuffled=True),
    "velocity_mask": ChannelLayout(("velocity", "mask")),
    "velocity_weight": ChannelLayout(("velocity", "mask", "weight")),
    "flux_velocity_mask": ChannelLayout(("flux", "velocity", "mask")),
    "flux_velocity_weight": ChannelLayout(("flux", "velocity", "mask", "weight")),
    "flux_shuffled_velocity_mask": ChannelLayout(("flux", "velocity", "mask"), shuffled=True),
    "flux_shuffled_velocity_weight": ChannelLayout(("flux", "velocity", "mask", "weight"), shuffled=True),
    "cube": ChannelLayout(("cube",)),  # "cube" stands for instrument.n_velocity_channels channels
}

#: channel mode -> number of input channels, for the modes of a fixed count (not ``cube``: ``n_channels``)
CHANNEL_MODES: dict[str, int] = {
    mode: len(lay.channels) for mode, lay in CHANNEL_LAYOUTS.items() if "cube" not in lay.channels
}

#: ``data.flux_norm`` options
FLUX_NORMS: tuple[str, ...] = ("peak", "snr")

#: sample keys that travel with the velocity map in the shuffled modes (one permutation for all)
VELOCITY_KEYS: tuple[str, ...] = ("velocity", "mask", "sigma_v_kms")

#: cap of the weight channel (sigma_v floored at sigma_v_ref_kms / sqrt(WEIGHT_MAX))
WEIGHT_MAX = 100.0

#: extra entropy word that separates the shuffle permutation stream from the sample streams
_SHUFFLE_TAG = 0x5EED5


def layout(mode: str) -> ChannelLayout:
    """The layout of a channel mode (``ConfigError`` naming ``data.channels`` if unknown)."""
    if mode not in CHANNEL_LAYOUTS:
        raise ConfigError(
            f"data.channels={mode!r} is unknown; use one of {sorted(CHANNEL_LAYOUTS)} "
            "(e.g. data.channels=flux)"
        )
    return CHANNEL_LAYOUTS[mode]


def n_channels(mode: str, n_velocity_channels: int = 0) -> int:
    """Number of input channels of a channel mode (``ConfigError`` naming ``data.channels`` if unknown);
    ``cube`` counts ``n_velocity_channels`` (``instrument.n_velocity_channels``, which must then be > 0)."""
    chans = layout(mode).channels
    if "cube" not in chans:
        return len(chans)
    if not int(n_velocity_channels or 0) > 0:
        raise ConfigError(
            f"data.channels={mode} feeds the IFU cube's slices, but instrument.n_velocity_channels="
            f"{n_velocity_channels} renders none; set instrument.n_velocity_channels (e.g. 16)"
        )
    return len(chans) - 1 + int(n_velocity_channels)


def n_velocity_channels_of(cfg: Any) -> int:
    """``instrument.n_velocity_channels`` of a config holding the physics groups (0 if absent)."""
    instrument = cfg.get("instrument") if hasattr(cfg, "get") else None
    value = instrument.get("n_velocity_channels", 0) if hasattr(instrument, "get") else 0
    return int(value or 0)


def needs_shuffle(mode: str) -> bool:
    """True if the mode pairs each flux map with another sample's velocity (and mask, weight)."""
    return layout(mode).shuffled


def check_flux_norm(flux_norm: str) -> str:
    """``flux_norm`` if known, else ``ConfigError`` naming ``data.flux_norm``."""
    if flux_norm not in FLUX_NORMS:
        raise ConfigError(f"data.flux_norm={flux_norm!r} is unknown; use one of {list(FLUX_NORMS)} "
                          "(peak: per-image robust peak; snr: per-pixel S/N)")
    return flux_norm


def two_stream_modes() -> list[str]:
    """Modes a two-stream model accepts: flux in channel 0, velocity (and its extras) after it."""
    return sorted(m for m, lay in CHANNEL_LAYOUTS.items() if lay.channels[:2] == ("flux", "velocity"))


def check_streams(mode: str, n_streams: int, model: str) -> None:
    """A two-stream model needs one of ``two_stream_modes()``: ``ConfigError`` naming both keys otherwise."""
    chans = layout(mode).channels
    if n_streams == 2 and mode not in two_stream_modes():
        ok = two_stream_modes()
        raise ConfigError(
            f"model={model} needs flux plus velocity channels but data.channels={mode} gives {list(chans)}; "
            f"use data.channels= one of {ok}, or model=baseline"
        )


def required_keys(mode: str, flux_norm: str = "peak") -> tuple[str, ...]:
    """Sample keys that ``stack_channels`` reads for ``mode`` and ``flux_norm``."""
    chans = layout(mode).channels
    keys = []
    if "flux" in chans:
        keys += ["flux"] + (["flux_sigma"] if check_flux_norm(flux_norm) == "snr" else [])
    keys += [k for k in ("velocity", "mask") if k in chans]
    if "weight" in chans:
        keys += ["sigma_v_kms"]
    if "cube" in chans:
        if flux_norm == "snr":
            raise ConfigError(f"data.flux_norm=snr is not defined for data.channels={mode} (no per-voxel "
                              "sigma); use data.flux_norm=peak")
        keys += ["cube"]
    return tuple(keys)


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


def normalise_cube(cube: np.ndarray, quantile: float = 0.995) -> np.ndarray:
    """Cube (B, V, N, N) divided by its per-sample ``quantile`` over all voxels; float32, dimensionless."""
    b = cube.shape[0]
    scale = np.maximum(np.quantile(cube.reshape(b, -1), quantile, axis=1), 1e-12).astype(np.float32)
    return (cube / scale[:, None, None, None]).astype(np.float32)


def flux_snr(flux: np.ndarray, flux_sigma: np.ndarray, snr_scale: float) -> np.ndarray:
    """Per-pixel S/N divided by ``snr_scale``: ``flux / flux_sigma / snr_scale`` (B, N, N) float32.

    ``flux_sigma`` (same units as ``flux``) must be positive; a non-positive sigma means a noiseless
    sample, for which S/N units do not exist (``ValueError``).
    """
    sigma = np.asarray(flux_sigma, dtype=np.float32)
    if not np.all(sigma > 0):
        raise ValueError("data.flux_norm=snr needs flux_sigma > 0 in every pixel (noiseless samples have no "
                         "S/N); use data.flux_norm=peak")
    return (np.asarray(flux, dtype=np.float32) / sigma / np.float32(snr_scale)).astype(np.float32)


def normalise_velocity(velocity_kms: np.ndarray, scale_kms: float) -> np.ndarray:
    """Velocity (B, N, N) in km/s divided by the fixed ``scale_kms``; float32, dimensionless."""
    return (velocity_kms / np.float32(scale_kms)).astype(np.float32)


def velocity_weight(sigma_v_kms: np.ndarray, mask: np.ndarray, sigma_ref_kms: float) -> np.ndarray:
    """Inverse-variance weight (B, N, N) float32: ``(sigma_ref_kms / sigma_v_kms)^2`` in the mask, 0 outside.

    Capped at ``WEIGHT_MAX``; a non-finite or non-positive ``sigma_v_kms`` inside the mask gives the cap
    (sigma_v = 0) or 0 (sigma_v = inf / NaN).
    """
    sv = np.asarray(sigma_v_kms, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = (float(sigma_ref_kms) / sv) ** 2
    w = np.where(sv <= 0, WEIGHT_MAX, w)
    w = np.nan_to_num(np.minimum(w, WEIGHT_MAX), nan=0.0, posinf=WEIGHT_MAX)
    return np.where(np.asarray(mask, dtype=bool), w, 0.0).astype(np.float32)


@dataclass(frozen=True)
class InputNorm:
    """Normalisation settings of the CNN input (the ``data.*`` keys of the same names)."""

    velocity_scale_kms: float = 300.0
    flux_quantile: float = 0.995
    flux_norm: str = "peak"
    flux_snr_scale: float = 30.0
    sigma_v_ref_kms: float = 10.0

    def __post_init__(self) -> None:
        check_flux_norm(self.flux_norm)
        for key in ("velocity_scale_kms", "flux_snr_scale", "sigma_v_ref_kms"):
            if not float(getattr(self, key)) > 0:
                raise ConfigError(f"data.{key}={getattr(self, key)!r} must be a positive number")

    @classmethod
    def from_cfg(cls, data_cfg: Any) -> InputNorm:
        """From a ``data`` config node (keys missing in an older config take the defaults)."""
        get = data_cfg.get if hasattr(data_cfg, "get") else lambda k, d: getattr(data_cfg, k, d)
        defaults, values = cls(), {}
        for key in cls.__dataclass_fields__:
            default = getattr(defaults, key)
            value = get(key, default)
            if isinstance(default, float):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"data.{key}={value!r} must be a positive number, e.g. {default}")
                value = float(value)
            values[key] = value
        return cls(**values)


def stack_channels(
    mode: str,
    flux: np.ndarray | None,
    velocity_kms: np.ndarray | None,
    velocity_scale_kms: float,
    flux_quantile: float = 0.995,
    *,
    mask: np.ndarray | None = None,
    sigma_v_kms: np.ndarray | None = None,
    flux_sigma: np.ndarray | None = None,
    flux_norm: str = "peak",
    flux_snr_scale: float = 30.0,
    sigma_v_ref_kms: float = 10.0,
    cube: np.ndarray | None = None,
) -> np.ndarray:
    """Build the (B, C, N, N) float32 CNN input for ``mode`` (channel order: the module's table).

    The velocity-side maps (``velocity_kms``, ``mask``, ``sigma_v_kms``) must already be the ones paired with
    each flux map (those of sample ``perm[i]`` in the shuffled modes): the caller fetches them. Maps a mode
    does not use may be None; a missing map it needs is a ``ValueError`` naming the sample key.
    """
    given = {"flux": flux, "velocity": velocity_kms, "mask": mask, "sigma_v_kms": sigma_v_kms,
             "flux_sigma": flux_sigma, "cube": cube}
    missing = [k for k in required_keys(mode, flux_norm) if given[k] is None]
    if missing:
        raise ValueError(f"data.channels={mode} (data.flux_norm={flux_norm}) needs sample keys {missing}; "
                         "the samples lack them (a cache from an older simulator? re-create it)")
    parts = []
    for name in layout(mode).channels:
        if name == "flux":
            parts.append(normalise_flux(flux, flux_quantile) if flux_norm == "peak"
                         else flux_snr(flux, flux_sigma, flux_snr_scale))
        elif name == "velocity":
            parts.append(normalise_velocity(velocity_kms, velocity_scale_kms))
        elif name == "mask":
            parts.append(np.asarray(mask, dtype=bool).astype(np.float32))
        elif name == "cube":
            parts.append(normalise_cube(np.asarray(cube, dtype=np.float32), flux_quantile))
        else:
            parts.append(velocity_weight(sigma_v_kms, mask, sigma_v_ref_kms))
    return np.concatenate([p if p.ndim == 4 else p[:, None] for p in parts], axis=1)


def stack_sample(mode: str, sample: Mapping[str, np.ndarray], norm: InputNorm) -> np.ndarray:
    """``stack_channels`` on a sample dict (simulator keys; velocity-side keys already re-paired)."""
    get = {k: (np.asarray(sample[k]) if k in sample else None) for k in
           ("flux", "velocity", "mask", "sigma_v_kms", "flux_sigma", "cube")}
    return stack_channels(
        mode, get["flux"], get["velocity"], norm.velocity_scale_kms, norm.flux_quantile,
        mask=get["mask"], sigma_v_kms=get["sigma_v_kms"], flux_sigma=get["flux_sigma"],
        flux_norm=norm.flux_norm, flux_snr_scale=norm.flux_snr_scale, sigma_v_ref_kms=norm.sigma_v_ref_kms,
        cube=get["cube"],
    )

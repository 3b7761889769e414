"""The IFU cube's formulas, written once: velocity channels, per-ray channel weights, voxel noise sigma.

Used by the production simulator (``instrument.n_velocity_channels``, ``backends.torch_cube``,
``cube_noise``) and by the differentiable renderer (``lensml.inference.cube``, through
``lensml.inference.physics``). Pure functions; velocities in km/s relative to systemic, flux in the image's
arbitrary units.

- **Channels**: ``n`` contiguous channels. Either ``channel_width_kms`` is given (channels of that width
  centred on 0: edges ``(k - n / 2) dv``) or ``velocity_range_kms`` R (edges ``linspace(-R, R, n + 1)``,
  width ``2 R / n``).
- **Line**: a ray of flux f at velocity v (the flux-weighted source velocity at the traced position) carries
  a Gaussian line of dispersion ``sigma_line = sqrt(sigma0^2 + sigma_instr^2)`` (intrinsic and the
  instrument's line spread function, ``lensml.sim.velocity_noise.line_sigma_kms``); channel k gets
  ``f w_k``, ``w_k = Phi((e_{k+1} - v) / sigma_line) - Phi((e_k - v) / sigma_line)``. Each slice is then
  block-averaged and PSF-convolved like the flux map. Continuum ignored.
- **Moments**: ``m0 = sum_k C_k``, ``m1 = sum_k v_k C_k / m0`` (``moments``) equal the flux map and the
  velocity map ``K*(f v) / K*(f)`` but for (a) the line flux beyond the outer edges (fraction
  ``Phi(-(R - |v|) / sigma_line)`` per side) and (b) the binning of the line in m1, bounded by
  ``moment1_binning_bound_kms`` = ``(dv / pi) exp(-2 pi^2 sigma_line^2 / dv^2)`` (the first Fourier term of
  the sawtooth ``v - v_k``; 0.05 km/s at dv = 80, sigma = 45 km/s; 11 km/s at dv = 160).
- **Voxel noise**: the flux noise of a pixel (``velocity_noise.flux_sigma``: Poisson with ``peak_snr`` at the
  noiseless peak, plus a background ``background_sigma_frac * peak``) split over the channels: the Poisson
  part per voxel has variance ``C * peak / peak_snr^2`` (counts = C / peak * peak_snr^2), the background
  part ``sigma_bg^2 dv / (2 sqrt(pi) sigma_line)``. Then the matched-filter S/N of a Gaussian line's flux over
  the channels equals the flux map's ``f / flux_sigma`` (background-limited), and the Cramer-Rao centroid
  error is ``sqrt(2) sigma_line / SNR``: the moment maps' model with kappa = sqrt(2), without the floor
  (``tests/inference/test_cube.py``, ``tests/sim/test_ifu_cube.py``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def channel_edges_kms(
    n_channels: int, channel_width_kms: float | None = None, velocity_range_kms: float | None = None
) -> np.ndarray:
    """(n + 1,) float64 channel edges (km/s): width ``channel_width_kms`` centred on 0, or tiling
    ``[-velocity_range_kms, velocity_range_kms]`` when no width is given (module docstring)."""
    n = int(n_channels)
    if n < 1:
        raise ValueError(f"channel_edges_kms: n_channels={n_channels} must be >= 1.")
    if channel_width_kms is not None:
        return (np.arange(n + 1, dtype=np.float64) - 0.5 * n) * float(channel_width_kms)
    if velocity_range_kms is None:
        raise ValueError("channel_edges_kms: give channel_width_kms or velocity_range_kms.")
    return np.linspace(-float(velocity_range_kms), float(velocity_range_kms), n + 1)


def channel_centres_kms(edges_kms: np.ndarray) -> np.ndarray:
    """(n,) channel centres (km/s) of the edges."""
    e = np.asarray(edges_kms, dtype=np.float64)
    return 0.5 * (e[1:] + e[:-1])


def channel_weights(v_kms: Tensor, sigma_line_kms: Tensor | float, edges_kms: np.ndarray) -> Tensor:
    """Fraction of each ray's line in each channel: ``(..., N_v, H, W)`` for ``v_kms`` of shape
    ``(..., H, W)``; ``sigma_line_kms`` a float or a tensor broadcastable to ``v_kms`` (e.g. (B, 1, 1))."""
    e = torch.as_tensor(np.asarray(edges_kms), dtype=v_kms.dtype, device=v_kms.device).reshape(-1, 1, 1)
    v = v_kms.unsqueeze(-3)
    s = sigma_line_kms.unsqueeze(-3) if isinstance(sigma_line_kms, Tensor) else sigma_line_kms
    erf = torch.erf((e - v) * (1.0 / (math.sqrt(2.0) * s)))  # Phi = (1 + erf) / 2: the 1 cancels
    return 0.5 * (erf[..., 1:, :, :] - erf[..., :-1, :, :])


def moments(cube: np.ndarray, edges_kms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(moment 0, moment 1 in km/s) of a cube (..., N_v, H, W); moment 1 is 0 where moment 0 <= 0."""
    c = np.asarray(cube, dtype=np.float64)
    m0 = c.sum(axis=-3)
    centres = channel_centres_kms(edges_kms).reshape(-1, 1, 1)
    m1 = np.where(m0 > 0, (centres * c).sum(axis=-3) / np.where(m0 > 0, m0, 1.0), 0.0)
    return m0, m1


def moment1_binning_bound_kms(dv_kms: float, sigma_line_kms: float | np.ndarray) -> np.ndarray:
    """Bound (km/s) on the binning error of moment 1 of a Gaussian line (module docstring)."""
    s = np.asarray(sigma_line_kms, dtype=np.float64)
    return dv_kms / math.pi * np.exp(-2.0 * math.pi**2 * s * s / (dv_kms * dv_kms))


def _per_image(value: float | np.ndarray, ndim: int) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    return a.reshape(a.shape + (1,) * (ndim - a.ndim)) if a.ndim else a


def background_voxel_sigma(
    peak: float | np.ndarray,
    background_sigma_frac: float,
    dv_kms: float,
    sigma_line_kms: float | np.ndarray,
) -> np.ndarray:
    """Background noise sigma per voxel (flux units): ``background_sigma_frac * peak *
    sqrt(dv / (2 sqrt(pi) sigma_line))``; scalars or (B,) arrays."""
    pk = np.asarray(peak, dtype=np.float64)
    s = np.asarray(sigma_line_kms, dtype=np.float64)
    return background_sigma_frac * pk * np.sqrt(dv_kms / (2.0 * math.sqrt(math.pi) * s))


def voxel_sigma(
    cube0: np.ndarray,
    peak: float | np.ndarray,
    peak_snr: float | np.ndarray,
    background_sigma_frac: float,
    dv_kms: float,
    sigma_line_kms: float | np.ndarray,
) -> np.ndarray:
    """Per-voxel noise sigma (flux units, float64) of a noiseless cube ``cube0`` (N_v, H, W), or (B, N_v,
    H, W) with ``peak``, ``peak_snr``, ``sigma_line_kms`` scalars or (B,); ``peak`` is the noiseless flux
    map's peak; ``peak_snr`` inf, None or <= 0: no Poisson part (module docstring)."""
    c = np.asarray(cube0, dtype=np.float64)
    pk = _per_image(peak, c.ndim)
    snr = _per_image(np.inf if peak_snr is None else peak_snr, c.ndim)
    inv_snr2 = np.where(np.isfinite(snr) & (snr > 0), 1.0 / np.where(snr > 0, snr, 1.0) ** 2, 0.0)
    bg = background_voxel_sigma(pk, background_sigma_frac, dv_kms, _per_image(sigma_line_kms, c.ndim))
    return np.sqrt(np.clip(c, 0.0, None) * pk * inv_snr2 + bg * bg)

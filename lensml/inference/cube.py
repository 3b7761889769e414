"""The IFU cube in the differentiable renderer: N_v velocity channels per pixel (forecast data set ``cube``).

Each ray carries the source's line: flux f at velocity v (the disk's line of sight) with the observed
dispersion ``sigma_line = sqrt(sigma0^2 + sigma_instr^2)`` (intrinsic and the instrument's line spread
function, ``lensml.sim.velocity_noise.line_sigma_kms``). Channel k (centre v_k, width dv) receives
``f [Phi((v_k + dv/2 - v) / sigma) - Phi((v_k - dv/2 - v) / sigma)]``; each slice is block-averaged and
PSF-convolved like the flux map, with the same rays. Summed over channels covering the line it is the flux
map; its first moment is the velocity map (``tests/inference/test_cube.py``). Continuum ignored.

Noise per voxel, consistent with the moment maps' noise model: the flux noise sigma_f of a pixel
(``flux_sigma``) splits into a Poisson part (variance ~ flux, so per voxel ~ the voxel's flux) and a
background part spread over the channels with per-voxel variance ``sigma_bg^2 dv / (2 sqrt(pi) sigma_line)``:
then the matched-filter S/N of a Gaussian line's flux equals f / sigma_f, and the Cramer-Rao centroid error
is ``sqrt(2) sigma_line / SNR`` (the moment maps' kappa = sqrt(2), without a floor).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from lensml.inference.renderer import Scene, observe, ray_shoot, source_at


def channel_edges(n_channels: int, v_range_kms: float) -> np.ndarray:
    """(n + 1,) channel edges (km/s) spanning [-v_range, v_range]."""
    return np.linspace(-v_range_kms, v_range_kms, n_channels + 1)


def render_cube(
    scene: Scene, theta: Tensor, edges: np.ndarray, sigma_line_kms: float, with_subhalo: bool = True
) -> Tensor:
    """Noiseless cube (N_v, N, N): flux per channel (flux units; sums to the flux map)."""
    p = {name: theta[j] for j, name in enumerate(scene.names)}
    bx, by = ray_shoot(scene, p, with_subhalo)
    f, fv = source_at(scene, p, bx, by)
    pos = f > 0
    v = torch.where(pos, fv / torch.where(pos, f, torch.ones_like(f)), torch.zeros_like(f))
    e = torch.as_tensor(edges, dtype=f.dtype).reshape(-1, 1, 1)
    cdf = 0.5 * (1 + torch.erf((e - v) / (math.sqrt(2.0) * sigma_line_kms)))
    slices = f * (cdf[1:] - cdf[:-1])  # (N_v, H, W)
    cube, _ = observe(scene, slices, slices[:1])
    return cube


def voxel_sigma(
    cube0: np.ndarray,
    peak: float,
    peak_snr: float,
    background_sigma_frac: float,
    dv_kms: float,
    sigma_line_kms: float,
) -> np.ndarray:
    """Per-voxel noise sigma (flux units) of a noiseless cube (module docstring)."""
    inv_snr2 = 1.0 / peak_snr**2 if np.isfinite(peak_snr) and peak_snr > 0 else 0.0
    bg2 = (background_sigma_frac * peak) ** 2 * dv_kms / (2.0 * math.sqrt(math.pi) * sigma_line_kms)
    return np.sqrt(np.clip(cube0, 0.0, None) * peak * inv_snr2 + bg2)


def cube_jacobian(
    scene: Scene, theta0: np.ndarray, free: list[str], edges: np.ndarray, sigma_line_kms: float
) -> tuple[Tensor, Tensor]:
    """(cube (N_v, N, N), Jacobian (N_v, N, N, len(free))) of the smooth model (no subhalo), ``jacfwd``."""
    base = torch.as_tensor(np.asarray(theta0), dtype=torch.float64)
    idx = scene.index(free)
    sel = torch.zeros(len(scene.names), len(idx), dtype=torch.float64)
    sel[idx, torch.arange(len(idx))] = 1.0

    def g(t: Tensor) -> Tensor:
        return render_cube(scene, base + sel @ (t - base[idx]), edges, sigma_line_kms, False)

    with torch.no_grad():
        cube0 = g(base[idx])
    if not free:
        return cube0, cube0.new_zeros(*cube0.shape, 0)
    return cube0, torch.func.jacfwd(g)(base[idx])

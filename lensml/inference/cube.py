"""The IFU cube in the differentiable renderer: N_v velocity channels per pixel (forecast data set ``cube``).

The formulas (channels, the line's channel weights, the voxel noise sigma) are those of the production
simulator's cube, written once in ``lensml.sim.cube`` (imported through ``lensml.inference.physics``): each
ray's line is spread over the channels, each slice block-averaged and PSF-convolved like the flux map with
the same rays; summed over channels covering the line it is the flux map, its first moment the velocity
map (``tests/inference/test_cube.py``). Continuum ignored. Noise per voxel: ``voxel_sigma`` (the moment
maps' flux noise split over the channels so that the matched-filter S/N of the line equals f / sigma_f).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lensml.inference.physics import channel_edges_kms, channel_weights, voxel_sigma
from lensml.inference.renderer import Scene, observe, ray_shoot, source_at

__all__ = ["channel_edges", "render_cube", "voxel_sigma", "cube_jacobian"]


def channel_edges(n_channels: int, v_range_kms: float) -> np.ndarray:
    """(n + 1,) channel edges (km/s) spanning [-v_range, v_range] (``lensml.sim.cube.channel_edges_kms``)."""
    return channel_edges_kms(n_channels, velocity_range_kms=v_range_kms)


def render_cube(
    scene: Scene, theta: Tensor, edges: np.ndarray, sigma_line_kms: float, with_subhalo: bool = True
) -> Tensor:
    """Noiseless cube (N_v, N, N): flux per channel (flux units; sums to the flux map)."""
    p = {name: theta[j] for j, name in enumerate(scene.names)}
    bx, by = ray_shoot(scene, p, with_subhalo)
    f, fv = source_at(scene, p, bx, by)
    pos = f > 0
    v = torch.where(pos, fv / torch.where(pos, f, torch.ones_like(f)), torch.zeros_like(f))
    slices = f * channel_weights(v, sigma_line_kms, edges)  # (N_v, H, W)
    cube, _ = observe(scene, slices, slices[:1])
    return cube


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

"""A free-form (pixelated) source: its image-plane response, linear in the source pixels.

The source is a bilinear interpolant of node values on an ``n x n`` grid (the tent basis, nodes at pixel
centres, zero outside, as ``lensml.sim.render``'s grids), centred on the sample's source with half-size
``extent`` x the production source grid's. Flux and flux x velocity each get their own pixels (s_f, s_fv).
For fixed lens parameters the observed flux is ``A s_f`` and the observed f v is ``A s_fv``, with
``A = PSF . block-average . bilinear(rays)`` (``response``); the velocity ``v = A s_fv / A s_f``, so about
the true model ``dv = (A ds_fv - v A ds_f) / f``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lensml.inference.renderer import DTYPE, Scene, observe, ray_shoot, source_at
from lensml.inference.source_torch import bilinear_weights, grid_units


def node_grid(scene: Scene, n: int, extent: float) -> tuple[float, float, float]:
    """(centre x, centre y, half-size) of the pixelated source grid, arcsec."""
    cx, cy, half, _, _ = scene.grid
    return cx, cy, extent * half


def response(scene: Scene, theta0: np.ndarray, n: int, extent: float) -> Tensor:
    """``A``: observed flux of each unit source pixel through the smooth lens at ``theta0``, (n^2, N, N)."""
    p = {name: torch.as_tensor(float(v), dtype=DTYPE) for name, v in zip(scene.names, theta0)}
    with torch.no_grad():
        bx, by = ray_shoot(scene, p, with_subhalo=False)
        cx, cy, half = node_grid(scene, n, extent)
        gx, gy = grid_units(bx, by, cx, cy, half)
        _, corners = bilinear_weights(gx, gy, n)
        h, w = bx.shape
        rays = torch.arange(h * w)
        basis = torch.zeros(n * n, h * w, dtype=DTYPE)
        for flat, weight, _ in corners:
            basis.index_put_((flat.reshape(-1), rays), weight.reshape(-1), accumulate=True)
        img, _ = observe(scene, basis.reshape(n * n, h, w), basis[:1].reshape(1, h, w))
        return img


def true_nodes(scene: Scene, theta0: np.ndarray, n: int, extent: float) -> tuple[np.ndarray, np.ndarray]:
    """The true source's flux and f v at the node positions (n^2,) (sets the regularisation strength)."""
    cx, cy, half = node_grid(scene, n, extent)
    u = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    gy, gx = np.meshgrid(cy + half * u, cx + half * u, indexing="ij")
    p = {name: torch.as_tensor(float(v), dtype=DTYPE) for name, v in zip(scene.names, theta0)}
    with torch.no_grad():
        f, fv = source_at(scene, p, torch.as_tensor(gx, dtype=DTYPE), torch.as_tensor(gy, dtype=DTYPE))
    return f.reshape(-1).numpy(), fv.reshape(-1).numpy()


__all__ = ["node_grid", "response", "true_nodes", "observe"]

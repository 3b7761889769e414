"""Source-plane models for the differentiable renderer, pure torch (``torch.func``-safe), one sample.

- ``disk_flux_fv``: the analytic rotating disk of ``lensml.sources.disk`` (same formulas and conventions:
  exponential disk, Sersic bulge at systemic velocity, Gaussian clumps moving with the disk, offset by their
  own ``clump_dv_kms`` where the source model has it), returning the
  flux and the flux-weighted velocity ``f v`` (km/s x flux) at positions (x, y) arcsec. Clumps: (K,)
  tensors (amplitude 0 = unused).
- ``bilinear``: ``grid_sample(align_corners=False)`` with zeros outside, as ``lensml.sim.render``'s
  ``bilinear_sample``, written with gathers so it can be differentiated w.r.t. the positions (the ray
  tracing) and the grid values (a pixelated source) under ``jacfwd``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

_DEG = math.pi / 180.0


def _v_los(X: Tensor, R: Tensor, sin_i: Tensor, v_max: Tensor, r_turn: Tensor, v_sys: Tensor) -> Tensor:
    """V_c(R) sin(i) cos(theta) + v_sys, V_c = v_max (1 - exp(-R / r_turn)); finite at R = 0."""
    m = torch.clamp(-R / r_turn, -80.0, -1e-30)
    return (torch.exp(m) - 1) / m * X * (v_max * sin_i / r_turn) + v_sys


def disk_flux_fv(x: Tensor, y: Tensor, p: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Flux (disk central brightness 1, times ``p['amplitude']`` if given) and flux x velocity (km/s).

    ``p``: ``lensml.sources.disk.DISK_PARAMS`` as 0-d tensors, optionally the ``CLUMP_PARAMS`` as (K,).
    """
    dx, dy = x - p["center_x"], y - p["center_y"]
    pa, inc = p["position_angle_deg"] * _DEG, p["inclination_deg"] * _DEG
    cos_pa, sin_pa, cos_i, sin_i = torch.cos(pa), torch.sin(pa), torch.cos(inc), torch.sin(inc)
    X = dx * cos_pa + dy * sin_pa
    Y = (dy * cos_pa - dx * sin_pa) / cos_i
    R = torch.sqrt(X * X + Y * Y + 1e-300)
    f_disk = torch.exp(torch.clamp(-R / p["scale_radius_arcsec"], min=-80.0))
    v_max, r_turn, v_sys = p["v_max_kms"], p["r_turn_arcsec"], p["v_sys_kms"]
    flux = f_disk
    fv = f_disk * _v_los(X, R, sin_i, v_max, r_turn, v_sys)
    n, r_eff = p["bulge_sersic_n"], p["bulge_r_eff_arcsec"]
    b_n = 1.9992 * n - 0.3271  # Capaccioli (1989)
    rr = torch.sqrt(dx * dx + dy * dy + 1e-300) / r_eff
    f_bulge = p["bulge_amp"] * torch.exp(-torch.clamp(b_n * (rr ** (1.0 / n) - 1.0), max=80.0))
    flux = flux + f_bulge
    fv = fv + f_bulge * v_sys
    if "clump_amp" in p and p["clump_amp"].shape[-1]:
        r_k, phi_k = p["clump_r_arcsec"], p["clump_phi_deg"] * _DEG
        X_k, Y_k = r_k * torch.cos(phi_k), r_k * torch.sin(phi_k)
        v_k = _v_los(X_k, torch.sqrt(X_k * X_k + Y_k * Y_k + 1e-300), sin_i, v_max, r_turn, v_sys)
        if "clump_dv_kms" in p:  # the clump's own line-of-sight velocity relative to the disk there
            v_k = v_k + p["clump_dv_kms"]
        ym = Y_k * cos_i
        ox, oy = X_k * cos_pa - ym * sin_pa, X_k * sin_pa + ym * cos_pa
        inv_2s2 = 1.0 / (2.0 * p["clump_sigma_arcsec"] ** 2)
        for k in range(p["clump_amp"].shape[-1]):
            d2 = ((dx - ox[k]) ** 2 + (dy - oy[k]) ** 2) * inv_2s2[k]
            f_k = p["clump_amp"][k] * torch.exp(-torch.clamp(d2, max=80.0))
            flux = flux + f_k
            fv = fv + f_k * v_k[k]
    amp = p.get("amplitude")
    return (flux, fv) if amp is None else (amp * flux, amp * fv)


def grid_units(
    bx: Tensor, by: Tensor, cx: float, cy: float, half: float, rotation_deg: float = 0.0, flip: bool = False
) -> tuple[Tensor, Tensor]:
    """Source-plane positions (arcsec) -> grid coordinates in [-1, 1] (``lensml.sim.render.grid_units``)."""
    th = math.radians(rotation_deg)
    dx, dy = bx - cx, by - cy
    ux = dx * math.cos(th) + dy * math.sin(th)
    uy = -dx * math.sin(th) + dy * math.cos(th)
    if flip:
        ux = -ux
    return ux / half, uy / half


def bilinear_weights(gx: Tensor, gy: Tensor, m: int) -> tuple[Tensor, list[tuple[Tensor, Tensor, Tensor]]]:
    """Corner indices and weights of bilinear sampling on an (m, m) grid at normalised coordinates.

    Returns ``(valid, [(flat_index, weight, inside) for the 4 corners])``; ``flat_index`` is clipped into
    the grid (its value is multiplied by ``inside`` = 0 outside). Indices come from the primal values;
    the weights carry the derivatives w.r.t. the positions.
    """
    ix = ((gx + 1.0) * m - 1.0) / 2.0
    iy = ((gy + 1.0) * m - 1.0) / 2.0
    x0, y0 = torch.floor(ix).detach(), torch.floor(iy).detach()
    wx1, wy1 = ix - x0, iy - y0
    corners = []
    for xi, wx in ((x0, 1.0 - wx1), (x0 + 1, wx1)):
        for yi, wy in ((y0, 1.0 - wy1), (y0 + 1, wy1)):
            inside = ((xi >= 0) & (xi < m) & (yi >= 0) & (yi < m)).to(gx.dtype)
            flat = (torch.clamp(yi, 0, m - 1) * m + torch.clamp(xi, 0, m - 1)).long()
            corners.append((flat, wx * wy * inside, inside))
    return ix, corners


def bilinear(image: Tensor, gx: Tensor, gy: Tensor) -> Tensor:
    """Bilinear sample of ``image`` (m, m) at normalised coordinates (any shape), zeros outside."""
    m = image.shape[-1]
    _, corners = bilinear_weights(gx, gy, m)
    flat_img = image.reshape(-1)
    out = torch.zeros_like(gx)
    for flat, w, _ in corners:
        out = out + flat_img[flat.reshape(-1)].reshape(gx.shape) * w
    return out

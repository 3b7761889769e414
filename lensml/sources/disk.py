"""Analytic rotating disk source: flux and line-of-sight velocity on the source plane.

Conventions (source plane):

- Positions in **arcsec**; ``position_angle_deg`` is the angle of the receding major axis, counter-clockwise
  from the +x axis; ``inclination_deg`` = 0 is face-on.
- Disk-plane coordinates: ``X`` along the major axis, ``Y = y_minor / cos(i)``; ``R = sqrt(X^2 + Y^2)`` and
  ``cos(theta) = X / R`` (theta = azimuth in the disk plane from the receding major axis).
- Flux in arbitrary surface-brightness units: exponential disk ``exp(-R / scale_radius)`` (central value 1),
  optional Sersic bulge (circular, amplitude ``bulge_amp`` at its effective radius, at systemic velocity),
  optional Gaussian clumps (``clump_amp`` x disk central brightness) that move with the disk: a clump at disk
  position (R_k, phi_k) has the line-of-sight velocity of the disk there.
- Velocity in **km/s**: ``V_los = V_c(R) sin(i) cos(theta) + v_sys``,
  ``V_c(R) = v_max (1 - exp(-R / r_turn))``.
  Where components overlap the velocity is their flux-weighted mean (the first moment of the line).
- ``sigma0_kms`` is the intrinsic (isotropic) dispersion: it widens the line but does not move its first
  moment, so it does not change the rendered velocity; it is returned by ``disk_dispersion`` for completeness.

Every function is batch-first and works on numpy arrays or torch tensors alike: parameters have shape (B,),
clump parameters (B, K) (pad unused clumps with ``clump_amp = 0``), positions (B, ...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Scalar disk parameters, each of shape (B,).
DISK_PARAMS: tuple[str, ...] = (
    "center_x",
    "center_y",
    "inclination_deg",
    "position_angle_deg",
    "scale_radius_arcsec",
    "v_max_kms",
    "r_turn_arcsec",
    "v_sys_kms",
    "sigma0_kms",
    "bulge_amp",
    "bulge_r_eff_arcsec",
    "bulge_sersic_n",
)
#: Clump parameters, each of shape (B, K): disk-plane radius (arcsec) and azimuth (deg), amplitude, width.
CLUMP_PARAMS: tuple[str, ...] = ("clump_r_arcsec", "clump_phi_deg", "clump_amp", "clump_sigma_arcsec")


def _xp(a: Any):  # noqa: ANN202 - numpy or torch module
    if isinstance(a, np.ndarray):
        return np
    import torch

    return torch


def _b(p: Any, like: Any) -> Any:
    """Parameter of shape (B,) or (B, K) reshaped to broadcast against positions (B, ...)."""
    xp = _xp(like)
    p = xp.asarray(p) if xp is np else xp.as_tensor(p, dtype=like.dtype, device=like.device)
    return p.reshape(p.shape + (1,) * (like.ndim - p.ndim))


def _disk_frame(x: Any, y: Any, prm: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    """Disk-plane (X, Y), sin(i) and cos(i) for sky positions (x, y)."""
    xp = _xp(x)
    pa = _b(prm["position_angle_deg"], x) * (math.pi / 180.0)
    inc = _b(prm["inclination_deg"], x) * (math.pi / 180.0)
    dx, dy = x - _b(prm["center_x"], x), y - _b(prm["center_y"], x)
    cos_pa, sin_pa = xp.cos(pa), xp.sin(pa)
    xm = dx * cos_pa + dy * sin_pa
    ym = -dx * sin_pa + dy * cos_pa
    cos_i = xp.cos(inc)
    return xm, ym / cos_i, xp.sin(inc), cos_i


def _v_los(X: Any, Y: Any, sin_i: Any, prm: Mapping[str, Any], like: Any) -> Any:
    """Line-of-sight velocity (km/s) at disk-plane (X, Y); finite at R = 0 (V_c ~ v_max R / r_turn)."""
    xp = _xp(like)
    r = xp.sqrt(X * X + Y * Y)
    r_turn = _b(prm["r_turn_arcsec"], like)
    # V_c(R) cos(theta) = v_max (1 - exp(-R/r_turn)) / R * X, and (1 - exp(-u)) / u -> 1 at u -> 0
    u = r / r_turn
    small = u < 1e-6
    u_safe = xp.where(small, xp.ones_like(u), u)
    ratio = xp.where(small, 1.0 - 0.5 * u, (1.0 - xp.exp(-u_safe)) / u_safe)
    return _b(prm["v_max_kms"], like) * sin_i * ratio * X / r_turn + _b(prm["v_sys_kms"], like)


def disk_maps(x: Any, y: Any, prm: Mapping[str, Any]) -> tuple[Any, Any]:
    """Flux (arbitrary units) and velocity (km/s) of the disk + bulge + clumps at positions (x, y) arcsec.

    ``prm`` holds the ``DISK_PARAMS`` (shape (B,)) and optionally the ``CLUMP_PARAMS`` (shape (B, K)).
    """
    xp = _xp(x)
    X, Y, sin_i, cos_i = _disk_frame(x, y, prm)
    r = xp.sqrt(X * X + Y * Y)
    f_disk = xp.exp(-r / _b(prm["scale_radius_arcsec"], x))
    v_disk = _v_los(X, Y, sin_i, prm, x)
    flux = f_disk
    flux_vel = f_disk * v_disk

    amp_b = _b(prm["bulge_amp"], x)
    n = _b(prm["bulge_sersic_n"], x)
    b_n = 1.9992 * n - 0.3271  # Capaccioli (1989), 0.5 < n < 10
    dx, dy = x - _b(prm["center_x"], x), y - _b(prm["center_y"], x)
    rr = xp.sqrt(dx * dx + dy * dy) / _b(prm["bulge_r_eff_arcsec"], x)
    f_bulge = amp_b * xp.exp(-b_n * (rr ** (1.0 / n) - 1.0))
    flux = flux + f_bulge
    flux_vel = flux_vel + f_bulge * _b(prm["v_sys_kms"], x)

    if "clump_amp" in prm and prm["clump_amp"].shape[-1] > 0:
        flux, flux_vel = _add_clumps(x, y, prm, flux, flux_vel)
    positive = flux > 0
    return flux, xp.where(positive, flux_vel, 0.0 * flux_vel) / xp.where(
        positive, flux, 1.0 + 0.0 * flux
    )


def _add_clumps(x: Any, y: Any, prm: Mapping[str, Any], flux: Any, flux_vel: Any) -> tuple[Any, Any]:
    xp = _xp(x)
    n_clumps = prm["clump_amp"].shape[-1]
    pa = _b(prm["position_angle_deg"], x) * (math.pi / 180.0)
    inc = _b(prm["inclination_deg"], x) * (math.pi / 180.0)
    cos_pa, sin_pa, cos_i, sin_i = xp.cos(pa), xp.sin(pa), xp.cos(inc), xp.sin(inc)
    cx, cy = _b(prm["center_x"], x), _b(prm["center_y"], x)
    for k in range(n_clumps):
        r_k = _b(prm["clump_r_arcsec"][:, k], x)
        phi_k = _b(prm["clump_phi_deg"][:, k], x) * (math.pi / 180.0)
        X_k, Y_k = r_k * xp.cos(phi_k), r_k * xp.sin(phi_k)
        xm, ym = X_k, Y_k * cos_i  # projected onto the sky, major-axis frame
        xk = cx + xm * cos_pa - ym * sin_pa
        yk = cy + xm * sin_pa + ym * cos_pa
        sig = _b(prm["clump_sigma_arcsec"][:, k], x)
        f_k = _b(prm["clump_amp"][:, k], x) * xp.exp(
            -((x - xk) ** 2 + (y - yk) ** 2) / (2.0 * sig * sig)
        )
        v_k = _v_los(X_k, Y_k, sin_i, prm, x)
        flux = flux + f_k
        flux_vel = flux_vel + f_k * v_k
    return flux, flux_vel


def disk_dispersion(x: Any, prm: Mapping[str, Any]) -> Any:
    """Intrinsic line-of-sight dispersion (km/s) of the disk: ``sigma0_kms`` everywhere (shape of x)."""
    return _b(prm["sigma0_kms"], x) + 0.0 * x


def disk_extent_arcsec(prm: Mapping[str, Any], n_scale: float = 5.0) -> np.ndarray:
    """Half-size (arcsec, shape (B,)) of a square source grid that holds the disk, bulge and clumps."""
    half = n_scale * np.asarray(prm["scale_radius_arcsec"], dtype=float)
    half = np.maximum(half, 4.0 * np.asarray(prm["bulge_r_eff_arcsec"], dtype=float))
    if "clump_amp" in prm and np.asarray(prm["clump_amp"]).shape[-1] > 0:
        reach = np.asarray(prm["clump_r_arcsec"]) + 4.0 * np.asarray(prm["clump_sigma_arcsec"])
        reach = np.where(np.asarray(prm["clump_amp"]) > 0, reach, 0.0)
        half = np.maximum(half, reach.max(axis=-1))
    return half

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


def _exp_neg(a: Any) -> Any:
    """exp(-a) with a capped at 80: e^-80 ~ 2e-35 stands for 0, and CPUs avoid their slow path for
    arguments that underflow to subnormals (10-20x slower on x86)."""
    xp = _xp(a)
    return xp.exp(-xp.clip(a, None, 80.0)) if xp is np else xp.exp(-a.clamp(max=80.0))


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
    ratio = xp.where(small, 1.0 - 0.5 * u, (1.0 - _exp_neg(u_safe)) / u_safe)
    return _b(prm["v_max_kms"], like) * sin_i * ratio * X / r_turn + _b(prm["v_sys_kms"], like)


def disk_maps(x: Any, y: Any, prm: Mapping[str, Any]) -> tuple[Any, Any]:
    """Flux (arbitrary units) and velocity (km/s) of the disk + bulge + clumps at positions (x, y) arcsec.

    ``prm`` holds the ``DISK_PARAMS`` (shape (B,)) and optionally the ``CLUMP_PARAMS`` (shape (B, K)).
    """
    xp = _xp(x)
    X, Y, sin_i, cos_i = _disk_frame(x, y, prm)
    r = xp.sqrt(X * X + Y * Y)
    f_disk = _exp_neg(r / _b(prm["scale_radius_arcsec"], x))
    v_disk = _v_los(X, Y, sin_i, prm, x)
    flux = f_disk
    flux_vel = f_disk * v_disk

    rows = _rows(prm["bulge_amp"])  # the bulge and each clump are evaluated only where present
    if len(rows):
        sub = {k: v[rows] for k, v in prm.items()}
        xs, ys = x[_index(rows, x)], y[_index(rows, x)]
        n = _b(sub["bulge_sersic_n"], xs)
        b_n = 1.9992 * n - 0.3271  # Capaccioli (1989), 0.5 < n < 10
        dx, dy = xs - _b(sub["center_x"], xs), ys - _b(sub["center_y"], xs)
        rr = xp.sqrt(dx * dx + dy * dy) / _b(sub["bulge_r_eff_arcsec"], xs)
        f_bulge = _b(sub["bulge_amp"], xs) * _exp_neg(b_n * (rr ** (1.0 / n) - 1.0))
        idx = _index(rows, x)
        flux[idx] = flux[idx] + f_bulge
        flux_vel[idx] = flux_vel[idx] + f_bulge * _b(sub["v_sys_kms"], xs)

    if "clump_amp" in prm:
        for k in range(prm["clump_amp"].shape[-1]):
            rows = _rows(prm["clump_amp"][:, k])
            if len(rows):
                idx = _index(rows, x)
                sub = {name: v[rows] for name, v in prm.items()}
                f_k, v_k = _clump(x[idx], y[idx], sub, k)
                flux[idx] = flux[idx] + f_k
                flux_vel[idx] = flux_vel[idx] + f_k * v_k
    positive = flux > 0
    return flux, xp.where(positive, flux_vel, 0.0 * flux_vel) / xp.where(
        positive, flux, 1.0 + 0.0 * flux
    )


def _rows(amp: Any) -> np.ndarray:
    """Indices of the samples where a component's amplitude is non-zero."""
    a = amp.detach().cpu().numpy() if hasattr(amp, "detach") else np.asarray(amp)
    return np.flatnonzero(a != 0)


def _index(rows: np.ndarray, like: Any) -> Any:
    if isinstance(like, np.ndarray):
        return rows
    import torch

    return torch.as_tensor(rows, device=like.device)


def _clump(x: Any, y: Any, prm: Mapping[str, Any], k: int) -> tuple[Any, Any]:
    """Flux and velocity (km/s) of clump ``k`` (a Gaussian knot with the disk velocity at its centre)."""
    xp = _xp(x)
    pa = _b(prm["position_angle_deg"], x) * (math.pi / 180.0)
    inc = _b(prm["inclination_deg"], x) * (math.pi / 180.0)
    cos_pa, sin_pa, cos_i, sin_i = xp.cos(pa), xp.sin(pa), xp.cos(inc), xp.sin(inc)
    r_k = _b(prm["clump_r_arcsec"][:, k], x)
    phi_k = _b(prm["clump_phi_deg"][:, k], x) * (math.pi / 180.0)
    X_k, Y_k = r_k * xp.cos(phi_k), r_k * xp.sin(phi_k)
    xm, ym = X_k, Y_k * cos_i  # projected onto the sky, major-axis frame
    xk = _b(prm["center_x"], x) + xm * cos_pa - ym * sin_pa
    yk = _b(prm["center_y"], x) + xm * sin_pa + ym * cos_pa
    sig = _b(prm["clump_sigma_arcsec"][:, k], x)
    f_k = _b(prm["clump_amp"][:, k], x) * _exp_neg(((x - xk) ** 2 + (y - yk) ** 2) / (2.0 * sig * sig))
    return f_k, _v_los(X_k, Y_k, sin_i, prm, x)


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

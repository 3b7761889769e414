"""Analytic rotating disk source: flux and line-of-sight velocity on the source plane.

Conventions (source plane):

- Positions in **arcsec**; ``position_angle_deg`` is the angle of the receding major axis, counter-clockwise
  from the +x axis; ``inclination_deg`` = 0 is face-on.
- Disk-plane coordinates: ``X`` along the major axis, ``Y = y_minor / cos(i)``; ``R = sqrt(X^2 + Y^2)`` and
  ``cos(theta) = X / R`` (theta = azimuth in the disk plane from the receding major axis).
- Flux in arbitrary surface-brightness units: exponential disk ``exp(-R / scale_radius)`` (central value 1),
  optional Sersic bulge (circular, amplitude ``bulge_amp`` at its effective radius, at systemic velocity),
  optional Gaussian clumps (``clump_amp`` x disk central brightness): a clump at disk position (R_k, phi_k)
  has the line-of-sight velocity of the disk there plus its own offset ``clump_dv_kms`` (0 if not given: a
  clump that moves with the disk), so a flux knot need not be a disk feature (e.g. an infalling or
  outflowing star-forming clump, +-30-80 km/s).
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

#: The disk's own parameters, each drawn from its prior in this order (``source_priors``).
DISK_SHAPE_PARAMS: tuple[str, ...] = (
    "inclination_deg",
    "position_angle_deg",
    "scale_radius_arcsec",
    "v_max_kms",
    "r_turn_arcsec",
    "v_sys_kms",
    "sigma0_kms",
)
#: Scalar disk parameters, each of shape (B,).
DISK_PARAMS: tuple[str, ...] = (
    "center_x",
    "center_y",
    *DISK_SHAPE_PARAMS,
    "bulge_amp",
    "bulge_r_eff_arcsec",
    "bulge_sersic_n",
)
#: Clump parameters, each of shape (B, K): disk-plane radius (arcsec) and azimuth (deg), amplitude, width
#: (arcsec), and the clump's own line-of-sight velocity relative to the disk there (km/s; optional, 0).
CLUMP_PARAMS: tuple[str, ...] = (
    "clump_r_arcsec",
    "clump_phi_deg",
    "clump_amp",
    "clump_sigma_arcsec",
    "clump_dv_kms",
)


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


def _inplace(xp: Any, fn: str, a: Any, *args: Any) -> Any:
    """``xp.<fn>(a, *args)`` written into ``a`` (a fresh temporary): one pass, no new array."""
    return getattr(xp, fn)(a, *args, out=a)


def _v_los(X: Any, R: Any, sin_i: Any, prm: Mapping[str, Any], like: Any) -> Any:
    """Line-of-sight velocity (km/s) at disk-plane X and radius R; finite at R = 0.

    ``V_c(R) cos(theta) = v_max X (1 - exp(-u)) / (u r_turn)``, u = R / r_turn (-u kept in [-80, -1e-30]).
    ``1 - exp(-u)`` loses relative precision as u -> 0, but the velocity error it makes is at most
    ``v_max`` times the float epsilon (|X| / r_turn <= u), e.g. 2e-5 km/s in float32; torch's expm1 costs
    several times its exp.
    """
    xp = _xp(like)
    r_turn = _b(prm["r_turn_arcsec"], like)
    m = R * (-1.0 / r_turn)
    m = xp.clip(m, -80.0, -1e-30, out=m) if xp is np else m.clamp_(-80.0, -1e-30)
    ratio = _inplace(xp, "exp", m.copy() if xp is np else m.clone())
    ratio -= 1.0
    ratio /= m
    ratio *= X
    ratio *= _b(prm["v_max_kms"], like) * sin_i / r_turn
    ratio += _b(prm["v_sys_kms"], like)
    return ratio


def disk_maps(x: Any, y: Any, prm: Mapping[str, Any]) -> tuple[Any, Any]:
    """Flux (arbitrary units) and velocity (km/s) of the disk + bulge + clumps at positions (x, y) arcsec.

    ``prm`` holds the ``DISK_PARAMS`` (shape (B,)) and optionally the ``CLUMP_PARAMS`` (shape (B, K)).
    The flux is > 0 everywhere (the disk's exponential is capped at e^-80), so the flux-weighted velocity
    is always defined.
    """
    return _disk_core(x - _b(prm["center_x"], x), y - _b(prm["center_y"], x), prm, on_grid=False)


def disk_maps_on_grid(x_axis: Any, y_axis: Any, prm: Mapping[str, Any]) -> tuple[Any, Any]:
    """``disk_maps`` on the regular grids ``x[b, i, j] = x_axis[b, j]``, ``y[b, i, j] = y_axis[b, i]``.

    ``x_axis``, ``y_axis``: (B, M) arcsec; returns (B, M, M) maps (rows follow y). Same values as
    ``disk_maps`` to float precision, cheaper: the disk-plane coordinates are sums of a row and a column
    term, and each clump's Gaussian is the product of a row and a column factor (each capped at e^-40).
    """
    dx = (x_axis - prm["center_x"].reshape(-1, 1))[:, None, :]
    dy = (y_axis - prm["center_y"].reshape(-1, 1))[:, :, None]
    return _disk_core(dx, dy, prm, on_grid=True)


def _disk_core(dx: Any, dy: Any, prm: Mapping[str, Any], on_grid: bool) -> tuple[Any, Any]:
    """Flux and velocity at offsets (dx, dy) from the disk centre (broadcast against each other)."""
    xp = _xp(dx)
    pa = _b(prm["position_angle_deg"], dx) * (math.pi / 180.0)
    inc = _b(prm["inclination_deg"], dx) * (math.pi / 180.0)
    cos_pa, sin_pa, cos_i = xp.cos(pa), xp.sin(pa), xp.cos(inc)
    X = dx * cos_pa + dy * sin_pa  # disk plane: X along the major axis
    Y = dy * (cos_pa / cos_i) - dx * (sin_pa / cos_i)  # (-dx sin_pa + dy cos_pa) / cos(i)
    Y *= Y
    r = X * X
    r += Y
    r = _inplace(xp, "sqrt", r)
    f_disk = r * (-1.0 / _b(prm["scale_radius_arcsec"], r))
    f_disk = xp.clip(f_disk, -80.0, None, out=f_disk) if xp is np else f_disk.clamp_(min=-80.0)
    f_disk = _inplace(xp, "exp", f_disk)
    flux_vel = _v_los(X, r, xp.sin(inc), prm, r)
    flux_vel *= f_disk
    flux = f_disk

    rows = _rows(prm["bulge_amp"])  # the bulge and each clump are evaluated only where present
    if len(rows):
        idx = _index(rows, r)
        names = ("bulge_sersic_n", "bulge_r_eff_arcsec", "bulge_amp", "v_sys_kms")
        n, r_eff, amp, v_sys = (_b(c, r) for c in _columns(_stack(xp, [prm[k] for k in names])[idx]))
        b_n = 1.9992 * n - 0.3271  # Capaccioli (1989), 0.5 < n < 10
        dxs, dys = _take(dx, idx), _take(dy, idx)
        rr = _inplace(xp, "sqrt", dxs * dxs + dys * dys) / r_eff  # circular on the sky
        f_bulge = amp * _exp_neg(b_n * (rr ** (1.0 / n) - 1.0))
        _add_rows(flux, idx, f_bulge)
        _add_rows(flux_vel, idx, f_bulge * v_sys)

    if "clump_amp" in prm and prm["clump_amp"].shape[-1]:
        clumps = _clump_params(prm)  # (B, K, 5): offset x, y, amplitude, 1 / (2 sigma^2), velocity
        for k in range(prm["clump_amp"].shape[-1]):
            if on_grid:  # separable: every sample at once (amplitude-0 clumps add exact zeros)
                xk, yk, amp, inv_2s2, v_k = (_b(c, r) for c in _columns(clumps[:, k]))
                g_col = _exp_neg_capped((dx - xk) ** 2 * inv_2s2, 40.0)  # (B, 1, M)
                g_row = _exp_neg_capped((dy - yk) ** 2 * inv_2s2, 40.0) * amp  # (B, M, 1)
                _add_outer(flux, g_row, g_col)
                _add_outer(flux_vel, g_row * v_k, g_col)
                continue
            rows = _rows(prm["clump_amp"][:, k])
            if len(rows):
                idx = _index(rows, r)
                xk, yk, amp, inv_2s2, v_k = (_b(c, r) for c in _columns(clumps[idx, k]))
                d2 = (_take(dx, idx) - xk) ** 2
                d2 += (_take(dy, idx) - yk) ** 2
                d2 *= inv_2s2
                f_k = amp * _exp_neg(d2)
                _add_rows(flux, idx, f_k)
                _add_rows(flux_vel, idx, f_k * v_k)
    flux_vel /= flux
    return flux, flux_vel


def _exp_neg_capped(a: Any, cap: float) -> Any:
    """exp(-min(a, cap))."""
    xp = _xp(a)
    return xp.exp(-xp.clip(a, None, cap)) if xp is np else xp.exp(-a.clamp(max=cap))


def _add_outer(acc: Any, col: Any, row: Any) -> None:
    """``acc += col * row`` in place (col (B, M, 1), row (B, 1, M))."""
    if isinstance(acc, np.ndarray):
        acc += col * row
    else:
        acc.addcmul_(col, row)


def _rows(amp: Any) -> np.ndarray:
    """Indices of the samples where a component's amplitude is non-zero."""
    a = amp.detach().cpu().numpy() if hasattr(amp, "detach") else np.asarray(amp)
    return np.flatnonzero(a != 0)


def _index(rows: np.ndarray, like: Any) -> Any:
    if isinstance(like, np.ndarray):
        return rows
    import torch

    return torch.as_tensor(rows, device=like.device)


def _take(a: Any, idx: Any) -> Any:
    """Rows ``idx`` of ``a`` (torch: ``index_select``, a copy of whole rows)."""
    return a[idx] if isinstance(a, np.ndarray) else a.index_select(0, idx)


def _add_rows(a: Any, idx: Any, value: Any) -> None:
    """``a[idx] += value`` in place (``idx`` without repeats)."""
    if isinstance(a, np.ndarray):
        a[idx] += value
    else:
        a.index_add_(0, idx, value)


def _stack(xp: Any, arrays: list[Any]) -> Any:
    return xp.stack([xp.asarray(a) if xp is np else a for a in arrays], -1)


def _columns(table: Any) -> list[Any]:
    """The columns of a (B, C) table, each of shape (B,)."""
    return [table[:, j] for j in range(table.shape[-1])]


def _clump_params(prm: Mapping[str, Any]) -> Any:
    """Per-clump quantities, shape (B, K, 5): the clump centre's offset (x, y) from the disk centre on the
    sky (arcsec), amplitude, 1 / (2 sigma^2) (arcsec^-2), and its line-of-sight velocity (km/s): the disk's
    there plus the clump's own ``clump_dv_kms`` (where given).

    A clump at disk-plane (R_k, phi_k) is a Gaussian knot moving with the disk, offset by ``clump_dv_kms``.
    """
    xp = _xp(prm["clump_amp"])
    pa = prm["position_angle_deg"].reshape(-1, 1) * (math.pi / 180.0)
    inc = prm["inclination_deg"].reshape(-1, 1) * (math.pi / 180.0)
    cos_pa, sin_pa, cos_i, sin_i = xp.cos(pa), xp.sin(pa), xp.cos(inc), xp.sin(inc)
    r_k = prm["clump_r_arcsec"]
    phi_k = prm["clump_phi_deg"] * (math.pi / 180.0)
    X_k, Y_k = r_k * xp.cos(phi_k), r_k * xp.sin(phi_k)
    xm, ym = X_k, Y_k * cos_i  # projected onto the sky, major-axis frame
    sig = prm["clump_sigma_arcsec"]
    v_k = _v_los(X_k, xp.sqrt(X_k * X_k + Y_k * Y_k), sin_i, prm, X_k)
    if "clump_dv_kms" in prm:
        v_k = v_k + prm["clump_dv_kms"]
    offset_x, offset_y = xm * cos_pa - ym * sin_pa, xm * sin_pa + ym * cos_pa
    return _stack(xp, [offset_x, offset_y, prm["clump_amp"], 1.0 / (2.0 * sig * sig), v_k])


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

"""Batched deflection angles in PyTorch, following lenstronomy's profile conventions exactly.

Conventions (the same as lenstronomy 1.14, so parameter dicts can be passed unchanged):

- Angles, positions, Einstein radii, scale radii and deflections are all in **arcsec**.
- Ellipticity (SIE, EPL): complex moduli ``e1, e2`` with ``phi = atan2(e2, e1) / 2`` and
  ``q = (1 - |e|) / (1 + |e|)`` (``lenstronomy.Util.param_util.ellipticity2phi_q``; ``|e|`` clipped
  at 0.9999).
  ``theta_E`` is the *product-averaged* (circularised) Einstein radius: kappa = (3 - gamma)/2
  (theta_E / sqrt(q x'^2 + y'^2 / q))^(gamma - 1) in the frame aligned with the major axis.
- SIE: lenstronomy's 'SIE' is its NIE with a tiny core ``s_scale = 1e-10`` arcsec (Keeton & Kochanek 1998);
  the major-axis critical radius is ``b = theta_E sqrt(q)``.
- EPL: Tessore & Metcalf (2015), ``b = theta_E sqrt(q)``, ``t = gamma - 1``; the angular hypergeometric
  function is summed as their recurrence series to float precision.
- SHEAR: ``alpha = (g1 dx + g2 dy, g2 dx - g1 dy)`` about ``(ra_0, dec_0)``.
- NFW: ``alpha_Rs`` is the deflection at ``Rs``; ``rho0 = alpha_Rs / (4 Rs^2 (1 + ln 1/2))``. lenstronomy's
  tiny core is reproduced: ``R >= 1e-8``, ``R / Rs >= 1e-6`` inside the radial function, ``Rs >= 1e-7``.
- TNFW: Baltz, Marshall & Oguri (2009) truncation ``rho_NFW * r_t^2 / (r^2 + r_t^2)``, same ``alpha_Rs``
  normalisation as NFW (truncation ignored), lenstronomy's core ``R / Rs >= 1e-3``.

Shapes: ``x, y`` have shape (B, ...) (e.g. (B, H, W); a shared grid can be passed as (1, H, W)). Every
parameter is a python float, a 0-d tensor, or a (B,) tensor / array, broadcast over x's trailing dims.
Results have the dtype of ``x`` (float32 or float64). The NFW/TNFW radial functions are evaluated in float64
internally (their closed forms cancel catastrophically at small radius in float32) and cast back.

Numerical safety: a zero-strength profile (``theta_E = 0`` or ``alpha_Rs = 0``) gives exactly 0; the centre
pixel gives a finite value (0 for SIS/SIE/EPL, as lenstronomy); ``e1 = e2 = 0`` is handled without dividing
by 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

Param = float | int | Tensor | np.ndarray

_MAX_ECC = 0.9999  # lenstronomy's clip of |e| in ellipticity2phi_q
_SIE_S_SCALE = 1e-10  # lenstronomy's SIE core (arcsec)
_NFW_R_MIN = 1e-8  # lenstronomy NFW: R = max(R, 1e-8)
_NFW_X_MIN = 1e-6  # lenstronomy NFW: X = max(X, 1e-6) inside g()
_NFW_RS_MIN = 1e-7  # lenstronomy NFW: Rs = max(Rs, 1e-7)
_TNFW_X_MIN = 1e-3  # lenstronomy TNFW: x = max(x, 1e-3)
_EPL_MAX_TERMS = 2000


def _param(p: Param, x: Tensor) -> Tensor:
    """``p`` as a tensor on x's device/dtype, shaped to broadcast against ``x`` (batch first)."""
    t = torch.as_tensor(p, dtype=x.dtype, device=x.device)
    if t.ndim == 1 and x.ndim > 1:
        t = t.reshape(t.shape[0], *([1] * (x.ndim - 1)))
    return t


def _shifted(x: Tensor, y: Tensor, cx: Param, cy: Param) -> tuple[Tensor, Tensor]:
    return x - _param(cx, x), y - _param(cy, x)


def _phi_q_terms(e1: Tensor, e2: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(cos phi, sin phi, q, 1 - q^2) from e1, e2; 1 - q^2 = 4c / (1 + c)^2 avoids cancellation."""
    phi = torch.atan2(e2, e1) / 2
    c = torch.clamp(torch.sqrt(e1 * e1 + e2 * e2), max=_MAX_ECC)
    q = (1 - c) / (1 + c)
    one_minus_q2 = 4 * c / (1 + c) ** 2
    return torch.cos(phi), torch.sin(phi), q, one_minus_q2


def _rotate_in(dx: Tensor, dy: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinates in the frame of the major axis (lenstronomy util.rotate by +phi)."""
    return dx * cos + dy * sin, -dx * sin + dy * cos


def _rotate_out(ax: Tensor, ay: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Deflection back to the sky frame (rotate by -phi)."""
    return ax * cos - ay * sin, ax * sin + ay * cos


def _atan_over_k(k: Tensor, z: Tensor) -> Tensor:
    """atan(k z) / k, continuous at k -> 0 (series below k = 1e-3)."""
    small = k < 1e-3
    k_safe = torch.where(small, torch.ones_like(k), k)
    kz = k * z
    return torch.where(small, z * (1 - kz * kz / 3), torch.atan(k_safe * z) / k_safe)


def _atanh_over_k(k: Tensor, z: Tensor) -> Tensor:
    """atanh(k z) / k, continuous at k -> 0 (series below k = 1e-3)."""
    small = k < 1e-3
    k_safe = torch.where(small, torch.ones_like(k), k)
    kz = k * z
    return torch.where(small, z * (1 + kz * kz / 3), torch.atanh(k_safe * z) / k_safe)


def alpha_sis(x: Tensor, y: Tensor, theta_E: Param, center_x: Param = 0.0, center_y: Param = 0.0):
    """Singular isothermal sphere (lenstronomy 'SIS'): alpha = theta_E * (dx, dy) / r; 0 at r = 0."""
    dx, dy = _shifted(x, y, center_x, center_y)
    r = torch.sqrt(dx * dx + dy * dy)
    a = _param(theta_E, x) / torch.where(r > 0, r, torch.ones_like(r))
    return a * dx, a * dy


def alpha_sie(
    x: Tensor, y: Tensor, theta_E: Param, e1: Param, e2: Param, center_x: Param = 0.0, center_y: Param = 0.0
):
    """Singular isothermal ellipsoid (lenstronomy 'SIE' = NIE with s_scale = 1e-10 arcsec).

    Written with in-place operations (about half the passes over the rays of the naive form): per-sample
    factors are computed on the parameters, b atan(k z) / k as atan2(k x', psi + s) * (b / k).
    """
    cos, sin, q, k2 = _phi_q_terms(_param(e1, x), _param(e2, x))
    dx, dy = _shifted(x, y, center_x, center_y)
    xr = torch.addcmul(dx * cos, dy, sin)  # frame of the major axis
    yr = torch.addcmul(dy * cos, dx, -sin)
    b = _param(theta_E, x) * torch.sqrt(q)
    s = _SIE_S_SCALE / torch.sqrt(q)
    q2 = q * q
    psi = torch.addcmul(q2 * (s * s), xr * xr, q2).addcmul_(yr, yr).sqrt_()
    den_x = psi + s
    den_y = psi.add_(q2 * s)
    k = torch.sqrt(k2)
    small = k < 1e-3  # atan(k z) / k -> z (1 - (k z)^2 / 3), atanh(k z) / k -> z (1 + (k z)^2 / 3)
    k_safe = torch.where(small, torch.ones_like(k), k)
    b_over_k = b / k_safe
    series = None
    if bool(small.any()):  # the per-element result does not depend on this branch
        z1, z2 = xr / den_x, yr / den_y
        kz1, kz2 = k * z1, k * z2
        series = (z1 * (1 - kz1 * kz1 / 3), z2 * (1 + kz2 * kz2 / 3))
    # atan(k xr / den_x) = atan2(k xr, den_x) as den_x > 0 (atan2 is the faster kernel on CPU)
    ax = torch.atan2(xr.mul_(k_safe), den_x).mul_(b_over_k)
    ay = yr.mul_(k_safe).div_(den_y).atanh_().mul_(b_over_k)
    if series is not None:
        ax = torch.where(small, b * series[0], ax)
        ay = torch.where(small, b * series[1], ay)
    out_x = torch.addcmul(ax * cos, ay, -sin)  # back to the sky frame
    out_y = ay.mul_(cos).addcmul_(ax, sin)
    return out_x, out_y


def _epl_series_terms(c_max: float, dtype: torch.dtype) -> int:
    """Number of terms of the Tessore & Metcalf series so that the tail is below float precision."""
    if c_max < 1e-12:
        return 1
    tol = 1e-16 if dtype == torch.float64 else 1e-8
    n = math.ceil(math.log(tol * (1 - c_max)) / math.log(c_max)) + 1
    return int(min(max(n, 1), _EPL_MAX_TERMS))


def alpha_epl(
    x: Tensor,
    y: Tensor,
    theta_E: Param,
    gamma: Param,
    e1: Param,
    e2: Param,
    center_x: Param = 0.0,
    center_y: Param = 0.0,
):
    """Elliptical power law (lenstronomy 'EPL'), Tessore & Metcalf (2015) eqs. (22)-(29).

    alpha = 2 b / (1 + q) (b / R)^(t - 1) Omega(phi), R = |q x' + i y'|, Omega = sum_n Omega_n with
    Omega_0 = e^{i phi}, Omega_n = -f (2n - 2 + t) / (2n + 2 - t) e^{2 i phi} Omega_{n-1},
    f = (1 - q) / (1 + q) = |e|.
    gamma must lie in (1, 3) (t in (0, 2)).
    """
    e1_t, e2_t = _param(e1, x), _param(e2, x)
    cos, sin, q, _ = _phi_q_terms(e1_t, e2_t)
    t = _param(gamma, x) - 1
    dx, dy = _shifted(x, y, center_x, center_y)
    xr, yr = _rotate_in(dx, dy, cos, sin)
    zx, zy = q * xr, yr
    r = torch.sqrt(zx * zx + zy * zy)
    r_safe = torch.where(r > 0, r, torch.ones_like(r))
    cphi, sphi = zx / r_safe, zy / r_safe  # e^{i phi}; (0, 0) at the centre -> alpha = 0 there
    c2, s2 = cphi * cphi - sphi * sphi, 2 * cphi * sphi  # e^{2 i phi}
    f = (1 - q) / (1 + q)
    c_max = float(torch.clamp(torch.sqrt(e1_t * e1_t + e2_t * e2_t), max=_MAX_ECC).max())
    om_re, om_im = cphi, sphi
    sum_re, sum_im = cphi.clone(), sphi.clone()
    for n in range(1, _epl_series_terms(c_max, x.dtype)):
        fac = -f * (2 * n - 2 + t) / (2 * n + 2 - t)
        om_re, om_im = fac * (om_re * c2 - om_im * s2), fac * (om_re * s2 + om_im * c2)
        sum_re = sum_re + om_re
        sum_im = sum_im + om_im
    b = _param(theta_E, x) * torch.sqrt(q)
    amp = 2 / (1 + q) * b**t * r_safe ** (1 - t)  # = 2 b / (1 + q) (b / R)^(t - 1); exactly 0 when b = 0
    return _rotate_out(amp * sum_re, amp * sum_im, cos, sin)


def alpha_shear(x: Tensor, y: Tensor, gamma1: Param, gamma2: Param, ra_0: Param = 0.0, dec_0: Param = 0.0):
    """External shear (lenstronomy 'SHEAR'), zero deflection at (ra_0, dec_0)."""
    dx, dy = _shifted(x, y, ra_0, dec_0)
    g1, g2 = _param(gamma1, x), _param(gamma2, x)
    return g1 * dx + g2 * dy, g2 * dx - g1 * dy


def _nfw_fx(x: Tensor) -> Tensor:
    """F(x) = atanh(sqrt(1-x^2)) / sqrt(1-x^2) (x < 1), atan(sqrt(x^2-1)) / sqrt(x^2-1) (x > 1), 1 at x = 1.

    Written as 2 / (1 + x) * atanh(s) / s with s = sqrt((1 - x) / (1 + x)) (atan for x > 1) to stay accurate
    around x = 1.
    """
    s = torch.sqrt(torch.abs(1 - x) / (1 + x))
    small = s < 1e-4
    s_safe = torch.where(small, torch.ones_like(s), s)
    inner = torch.where(x < 1, torch.atanh(s_safe) / s_safe, torch.atan(s_safe) / s_safe)
    series = torch.where(x < 1, 1 + s * s / 3, 1 - s * s / 3)
    return 2 / (1 + x) * torch.where(small, series, inner)


def _nfw_g_over_x2(x: Tensor) -> Tensor:
    """g(x) / x^2 of the NFW profile, g(x) = ln(x/2) + F(x) (lenstronomy nfw._g), stable at small x.

    Below x = 1e-2 the series L/2 - 1/4 + x^2 (3L/8 - 7/32) + x^4 (5L/16 - 37/192), L = ln(2/x), is used
    (relative error < 1e-10 on both sides of the switch in float64).
    """
    small = x < 1e-2
    x_safe = torch.where(small, torch.ones_like(x), x)
    exact = (torch.log(x_safe / 2) + _nfw_fx(x_safe)) / (x_safe * x_safe)
    big_l = torch.log(2 / torch.where(small, x, torch.ones_like(x)))
    x2 = x * x
    series = big_l / 2 - 0.25 + x2 * (3 * big_l / 8 - 7 / 32) + x2 * x2 * (5 * big_l / 16 - 37 / 192)
    return torch.where(small, series, exact)


def alpha_nfw(
    x: Tensor, y: Tensor, Rs: Param, alpha_Rs: Param, center_x: Param = 0.0, center_y: Param = 0.0
):
    """NFW (lenstronomy 'NFW'): |alpha|(R) = alpha_Rs / (1 + ln 1/2) g(R/Rs) / (R/Rs), radial."""
    dtype = x.dtype
    x64 = x.to(torch.float64)
    dx, dy = _shifted(x64, y.to(torch.float64), center_x, center_y)
    rs = torch.clamp(_param(Rs, x64), min=_NFW_RS_MIN)
    r = torch.clamp(torch.sqrt(dx * dx + dy * dy), min=_NFW_R_MIN)
    xx = torch.clamp(r / rs, min=_NFW_X_MIN)
    a = _param(alpha_Rs, x64) / (rs * (1 + math.log(0.5))) * _nfw_g_over_x2(xx)
    return (a * dx).to(dtype), (a * dy).to(dtype)


def _tnfw_g(x: Tensor, tau: Tensor) -> Tensor:
    """g(x, tau) of the truncated NFW (Baltz et al. 2009; lenstronomy tnfw._g), x = R/Rs, tau = r_t/Rs."""
    t2 = tau * tau
    root = torch.sqrt(t2 + x * x)
    big_l = torch.log(x / (tau + root))
    return t2 / (t2 + 1) ** 2 * (
        (t2 + 1 + 2 * (x * x - 1)) * _nfw_fx(x)
        + tau * math.pi
        + (t2 - 1) * torch.log(tau)
        + root * (-math.pi + big_l * (t2 - 1) / tau)
    )


def alpha_tnfw(
    x: Tensor,
    y: Tensor,
    Rs: Param,
    alpha_Rs: Param,
    r_trunc: Param,
    center_x: Param = 0.0,
    center_y: Param = 0.0,
):
    """Truncated NFW (lenstronomy 'TNFW', Baltz et al. 2009).

    |alpha| = alpha_Rs / (1 + ln 1/2) g(x, tau) / x with x = R / Rs, tau = r_trunc / Rs.
    """
    dtype = x.dtype
    x64 = x.to(torch.float64)
    dx, dy = _shifted(x64, y.to(torch.float64), center_x, center_y)
    rs = torch.clamp(_param(Rs, x64), min=_NFW_RS_MIN)
    tau = torch.clamp(_param(r_trunc, x64) / rs, min=1e-6)
    r = torch.sqrt(dx * dx + dy * dy)
    xx = torch.clamp(r / rs, min=_TNFW_X_MIN)
    a = _param(alpha_Rs, x64) / (rs * (1 + math.log(0.5))) * _tnfw_g(xx, tau) / (xx * xx)
    return (a * dx).to(dtype), (a * dy).to(dtype)

"""Deflection angles written for ``torch.func`` transforms (``jacfwd`` / ``vmap``): pure, no in-place ops,
no data-dependent Python control flow.

The same profiles and conventions as ``lensml.sim.backends.torch_deflections`` (lenstronomy's, arcsec):
SIE (NIE with core ``s = 1e-10``), EPL (Tessore & Metcalf 2015 series), SHEAR, NFW, TNFW (Baltz et al.
2009), SIS. The production functions use in-place arithmetic and ``bool(tensor)`` branches for speed,
which ``jacfwd`` (``vmap`` over ``jvp``) cannot trace; these are their functional twins, tested against
lenstronomy (``tests/inference/test_profiles.py``). Every parameter is a 0-d tensor (one sample); ``x``,
``y`` any shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

_MAX_ECC = 0.9999
_SIE_S = 1e-10
_NFW_RS_MIN = 1e-7
_NFW_R_MIN = 1e-8
_NFW_X_MIN = 1e-6
_TNFW_X_MIN = 1e-3


def _phi_q(e1: Tensor, e2: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """cos phi, sin phi, q, |e| (clipped at 0.9999) from lenstronomy's e1, e2 (phi = atan2(e2, e1) / 2)."""
    phi = torch.atan2(e2, e1) / 2
    c = torch.clamp(torch.sqrt(e1 * e1 + e2 * e2 + 1e-300), max=_MAX_ECC)
    return torch.cos(phi), torch.sin(phi), (1 - c) / (1 + c), c


def alpha_sis(x: Tensor, y: Tensor, theta_E: Tensor, center_x: Tensor, center_y: Tensor):
    dx, dy = x - center_x, y - center_y
    r = torch.sqrt(dx * dx + dy * dy + 1e-300)
    return theta_E * dx / r, theta_E * dy / r


def alpha_sie(
    x: Tensor, y: Tensor, theta_E: Tensor, e1: Tensor, e2: Tensor, center_x: Tensor, center_y: Tensor
):
    """lenstronomy 'SIE' (NIE, Keeton & Kochanek 1998, core 1e-10 arcsec); theta_E product-averaged."""
    cos, sin, q, c = _phi_q(e1, e2)
    dx, dy = x - center_x, y - center_y
    xr, yr = dx * cos + dy * sin, -dx * sin + dy * cos
    b = theta_E * torch.sqrt(q)
    s = _SIE_S / torch.sqrt(q)
    q2 = q * q
    psi = torch.sqrt(q2 * (s * s + xr * xr) + yr * yr)
    k = torch.sqrt(4 * c / (1 + c) ** 2)  # sqrt(1 - q^2)
    small = k < 1e-3
    k_safe = torch.where(small, torch.ones_like(k), k)
    z1, z2 = xr / (psi + s), yr / (psi + q2 * s)
    ax = torch.where(small, b * z1 * (1 - (k * z1) ** 2 / 3), b / k_safe * torch.atan(k_safe * z1))
    ay = torch.where(small, b * z2 * (1 + (k * z2) ** 2 / 3), b / k_safe * torch.atanh(k_safe * z2))
    return ax * cos - ay * sin, ax * sin + ay * cos


def epl_terms(e1: float, e2: float) -> int:
    """Series terms for the EPL at |e| (float64 precision); computed outside the transforms."""
    c = min(math.hypot(e1, e2), _MAX_ECC)
    if c < 1e-12:
        return 1
    return int(min(max(math.ceil(math.log(1e-16 * (1 - c)) / math.log(c)) + 1, 1), 2000))


def make_alpha_epl(n_terms: int) -> Callable[..., tuple[Tensor, Tensor]]:
    """lenstronomy 'EPL' (Tessore & Metcalf 2015 eqs. 22-29) summed to ``n_terms`` terms (``epl_terms``)."""

    def alpha_epl(x, y, theta_E, gamma, e1, e2, center_x, center_y):  # noqa: ANN001, ANN202
        cos, sin, q, _ = _phi_q(e1, e2)
        t = gamma - 1
        dx, dy = x - center_x, y - center_y
        xr, yr = dx * cos + dy * sin, -dx * sin + dy * cos
        zx, zy = q * xr, yr
        r = torch.sqrt(zx * zx + zy * zy + 1e-300)
        cphi, sphi = zx / r, zy / r
        c2, s2 = cphi * cphi - sphi * sphi, 2 * cphi * sphi
        f = (1 - q) / (1 + q)
        om_re, om_im, sum_re, sum_im = cphi, sphi, cphi, sphi
        for n in range(1, n_terms):
            fac = -f * (2 * n - 2 + t) / (2 * n + 2 - t)
            om_re, om_im = fac * (om_re * c2 - om_im * s2), fac * (om_re * s2 + om_im * c2)
            sum_re, sum_im = sum_re + om_re, sum_im + om_im
        b = theta_E * torch.sqrt(q)
        amp = 2 / (1 + q) * b**t * r ** (1 - t)
        ax, ay = amp * sum_re, amp * sum_im
        return ax * cos - ay * sin, ax * sin + ay * cos

    return alpha_epl


def alpha_shear(x: Tensor, y: Tensor, gamma1: Tensor, gamma2: Tensor):
    """lenstronomy 'SHEAR' about (0, 0)."""
    return gamma1 * x + gamma2 * y, gamma2 * x - gamma1 * y


def _nfw_fx(x: Tensor) -> Tensor:
    s = torch.sqrt(torch.abs(1 - x) / (1 + x) + 1e-300)
    small = s < 1e-4
    s_safe = torch.where(small, torch.full_like(s, 0.5), s)
    inner = torch.where(x < 1, torch.atanh(s_safe) / s_safe, torch.atan(s_safe) / s_safe)
    series = torch.where(x < 1, 1 + s * s / 3, 1 - s * s / 3)
    return 2 / (1 + x) * torch.where(small, series, inner)


def _nfw_g_over_x2(x: Tensor) -> Tensor:
    small = x < 1e-2
    xs = torch.where(small, torch.ones_like(x), x)
    exact = (torch.log(xs / 2) + _nfw_fx(xs)) / (xs * xs)
    big_l = torch.log(2 / torch.where(small, x, torch.ones_like(x)))
    x2 = x * x
    series = big_l / 2 - 0.25 + x2 * (3 * big_l / 8 - 7 / 32) + x2 * x2 * (5 * big_l / 16 - 37 / 192)
    return torch.where(small, series, exact)


def alpha_nfw(x: Tensor, y: Tensor, Rs: Tensor, alpha_Rs: Tensor, center_x: Tensor, center_y: Tensor):
    """lenstronomy 'NFW': |alpha|(R) = alpha_Rs / (1 + ln 1/2) g(R / Rs) / (R / Rs)."""
    dx, dy = x - center_x, y - center_y
    rs = torch.clamp(Rs, min=_NFW_RS_MIN)
    r = torch.clamp(torch.sqrt(dx * dx + dy * dy + 1e-300), min=_NFW_R_MIN)
    xx = torch.clamp(r / rs, min=_NFW_X_MIN)
    a = alpha_Rs / (rs * (1 + math.log(0.5))) * _nfw_g_over_x2(xx)
    return a * dx, a * dy


def alpha_tnfw(
    x: Tensor, y: Tensor, Rs: Tensor, alpha_Rs: Tensor, r_trunc: Tensor, center_x: Tensor, center_y: Tensor
):
    """lenstronomy 'TNFW' (Baltz, Marshall & Oguri 2009), tau = r_trunc / Rs."""
    dx, dy = x - center_x, y - center_y
    rs = torch.clamp(Rs, min=_NFW_RS_MIN)
    tau = torch.clamp(r_trunc / rs, min=1e-6)
    r = torch.sqrt(dx * dx + dy * dy + 1e-300)
    xx = torch.clamp(r / rs, min=_TNFW_X_MIN)
    t2 = tau * tau
    root = torch.sqrt(t2 + xx * xx)
    big_l = torch.log(xx / (tau + root))
    g = (
        t2
        / (t2 + 1) ** 2
        * (
            (t2 + 1 + 2 * (xx * xx - 1)) * _nfw_fx(xx)
            + tau * math.pi
            + (t2 - 1) * torch.log(tau)
            + root * (-math.pi + big_l * (t2 - 1) / tau)
        )
    )
    a = alpha_Rs / (rs * (1 + math.log(0.5))) * g / (xx * xx)
    return a * dx, a * dy


def alpha_multipole(
    x: Tensor, y: Tensor, m: int, a_m: Tensor, phi_m: Tensor, center_x: Tensor, center_y: Tensor
):
    """lenstronomy 'MULTIPOLE' of integer order m >= 2 (Xu et al. 2013 eq. B12): with (c, s) = (cos phi,
    sin phi), C / S = cos / sin m (phi - phi_m), K = a_m / (1 - m^2): alpha = K (c C + m s S, s C - m c S);
    phi = 0 at r = 0 (lenstronomy's ``cart2polar``)."""
    a_c, a_s = a_m * torch.cos(m * phi_m), a_m * torch.sin(m * phi_m)
    return alpha_multipole_cartesian(x, y, m, a_c, a_s, center_x, center_y)


def alpha_multipole_cartesian(
    x: Tensor, y: Tensor, m: int, a_cos: Tensor, a_sin: Tensor, center_x: Tensor, center_y: Tensor
):
    """The same multipole with components ``a_cos = a_m cos(m phi_m)``, ``a_sin = a_m sin(m phi_m)``
    (arcsec): the deflection is linear in them, so a linearised fit spans the multipole exactly (a_m, phi_m
    are degenerate at a_m = 0 and strongly nonlinear in phi_m)."""
    dx, dy = x - center_x, y - center_y
    r = torch.sqrt(dx * dx + dy * dy)
    pos = r > 0
    r_safe = torch.where(pos, r, torch.ones_like(r))
    c = torch.where(pos, dx / r_safe, torch.ones_like(r))
    s = torch.where(pos, dy / r_safe, torch.zeros_like(r))
    cm, sm = c, s
    for _ in range(2, m + 1):  # (c + i s)^m
        cm, sm = cm * c - sm * s, cm * s + sm * c
    kc, ks = a_cos / (1 - m * m), a_sin / (1 - m * m)
    big_c = kc * cm + ks * sm
    big_s = kc * sm - ks * cm
    return c * big_c + m * s * big_s, s * big_c - m * c * big_s


#: Profile name -> (deflection function or factory, its parameter names in call order).
PROFILE_PARAMS: dict[str, tuple[str, ...]] = {
    "SIS": ("theta_E", "center_x", "center_y"),
    "SIE": ("theta_E", "e1", "e2", "center_x", "center_y"),
    "EPL": ("theta_E", "gamma", "e1", "e2", "center_x", "center_y"),
    "SHEAR": ("gamma1", "gamma2"),
    "NFW": ("Rs", "alpha_Rs", "center_x", "center_y"),
    "TNFW": ("Rs", "alpha_Rs", "r_trunc", "center_x", "center_y"),
}
_FUNCS = {"SIS": alpha_sis, "SIE": alpha_sie, "SHEAR": alpha_shear, "NFW": alpha_nfw, "TNFW": alpha_tnfw}


def deflection(name: str, n_terms: int = 1) -> Callable[..., tuple[Tensor, Tensor]]:
    """The deflection function of profile ``name`` (EPL: summed to ``n_terms`` terms)."""
    if name == "EPL":
        return make_alpha_epl(n_terms)
    if name not in _FUNCS:
        raise KeyError(f"profile {name!r} has no differentiable twin; use one of {sorted(PROFILE_PARAMS)}")
    return _FUNCS[name]

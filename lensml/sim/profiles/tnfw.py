"""TNFW: truncated NFW (lenstronomy 'TNFW', Baltz, Marshall & Oguri 2009), a subhalo profile.

Density ``rho_NFW * r_t^2 / (r^2 + r_t^2)``; the same ``alpha_Rs`` normalisation as NFW (truncation
ignored); lenstronomy's core ``R / Rs >= 1e-3``. |alpha| = alpha_Rs / (1 + ln 1/2) g(x, tau) / x with
x = R / Rs, tau = r_trunc / Rs. Fast paths: one universal table per tau (``radial_kwargs``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lensml.sim.profiles.base import KernelPacking, LensProfile, Param, param, shifted
from lensml.sim.profiles.nfw import NFW_RS_MIN, check_radial, nfw_fx, pack_tabulated
from lensml.sim.profiles.sis import SUB_COLUMNS

TNFW_X_MIN = 1e-3  # lenstronomy TNFW: x = max(x, 1e-3)


def tnfw_g(x: Tensor, tau: Tensor) -> Tensor:
    """g(x, tau) of the truncated NFW (Baltz et al. 2009; lenstronomy tnfw._g), x = R/Rs, tau = r_t/Rs."""
    t2 = tau * tau
    root = torch.sqrt(t2 + x * x)
    big_l = torch.log(x / (tau + root))
    return t2 / (t2 + 1) ** 2 * (
        (t2 + 1 + 2 * (x * x - 1)) * nfw_fx(x)
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
    dx, dy = shifted(x64, y.to(torch.float64), center_x, center_y)
    rs = torch.clamp(param(Rs, x64), min=NFW_RS_MIN)
    tau = torch.clamp(param(r_trunc, x64) / rs, min=1e-6)
    r = torch.sqrt(dx * dx + dy * dy)
    xx = torch.clamp(r / rs, min=TNFW_X_MIN)
    a = param(alpha_Rs, x64) / (rs * (1 + math.log(0.5))) * tnfw_g(xx, tau) / (xx * xx)
    return (a * dx).to(dtype), (a * dy).to(dtype)


PROFILE = LensProfile(
    name="TNFW",
    params={
        "Rs": "scale radius, arcsec",
        "alpha_Rs": "deflection at Rs (truncation ignored), arcsec",
        "r_trunc": "truncation radius, arcsec",
        "center_x": "arcsec",
        "center_y": "arcsec",
    },
    alpha=alpha_tnfw,
    role="subhalo",
    strength="alpha_Rs",
    check=lambda kw, key: check_radial(PROFILE, kw, key),
    torch_eval="radial_table",
    grid_eval="radial_table",
    kernel=KernelPacking("sub", 2.0, SUB_COLUMNS, pack_tabulated),  # pack(kw, affine, table_row)
    radial_kwargs=lambda tau: {"r_trunc": float(tau)},
)

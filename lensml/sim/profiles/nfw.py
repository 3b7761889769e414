"""NFW (lenstronomy 'NFW'), a subhalo profile: |alpha|(R) = alpha_Rs / (1 + ln 1/2) g(R/Rs) / (R/Rs), radial.

``alpha_Rs`` is the deflection at ``Rs``; ``rho0 = alpha_Rs / (4 Rs^2 (1 + ln 1/2))``. lenstronomy's tiny core
is reproduced: ``R >= 1e-8``, ``R / Rs >= 1e-6`` inside the radial function, ``Rs >= 1e-7``. The radial
function is evaluated in float64 (its closed form cancels catastrophically at small radius in float32) and
cast back. Fast paths: |alpha| / R = alpha_Rs / Rs h(R / Rs) from a universal table (``radial_kwargs``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from lensml.errors import ConfigError
from lensml.sim.profiles.base import (
    KernelPacking,
    LensProfile,
    Param,
    check_positive,
    checked_params,
    param,
    shifted,
)
from lensml.sim.profiles.sis import SUB_COLUMNS, radial_sub_columns

NFW_R_MIN = 1e-8  # lenstronomy NFW: R = max(R, 1e-8)
NFW_X_MIN = 1e-6  # lenstronomy NFW: X = max(X, 1e-6) inside g()
NFW_RS_MIN = 1e-7  # lenstronomy NFW: Rs = max(Rs, 1e-7)


def nfw_fx(x: Tensor) -> Tensor:
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


def nfw_g_over_x2(x: Tensor) -> Tensor:
    """g(x) / x^2 of the NFW profile, g(x) = ln(x/2) + F(x) (lenstronomy nfw._g), stable at small x.

    Below x = 1e-2 the series L/2 - 1/4 + x^2 (3L/8 - 7/32) + x^4 (5L/16 - 37/192), L = ln(2/x), is used
    (relative error < 1e-10 on both sides of the switch in float64).
    """
    small = x < 1e-2
    x_safe = torch.where(small, torch.ones_like(x), x)
    exact = (torch.log(x_safe / 2) + nfw_fx(x_safe)) / (x_safe * x_safe)
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
    dx, dy = shifted(x64, y.to(torch.float64), center_x, center_y)
    rs = torch.clamp(param(Rs, x64), min=NFW_RS_MIN)
    r = torch.clamp(torch.sqrt(dx * dx + dy * dy), min=NFW_R_MIN)
    xx = torch.clamp(r / rs, min=NFW_X_MIN)
    a = param(alpha_Rs, x64) / (rs * (1 + math.log(0.5))) * nfw_g_over_x2(xx)
    return (a * dx).to(dtype), (a * dy).to(dtype)


def check_radial(profile: LensProfile, kwargs: Mapping, key_prefix: str) -> dict[str, np.ndarray]:
    """Rs > 0, alpha_Rs >= 0 (and r_trunc > 0 where it is a parameter)."""
    out = checked_params(profile, kwargs, key_prefix)
    check_positive(out, "Rs", key_prefix, "0.01 (arcsec)")
    if np.any(out["alpha_Rs"] < 0):
        raise ConfigError(
            f"{key_prefix}.alpha_Rs must be >= 0 (deflection at Rs, arcsec); set e.g. 0.01."
        )
    if "r_trunc" in out:
        check_positive(out, "r_trunc", key_prefix, "0.1 (arcsec)")
    return out


def pack_tabulated(kw: Mapping[str, np.ndarray], affine: np.ndarray, table_row: np.ndarray) -> np.ndarray:
    """The kernel's ``sub`` row of a tabulated radial profile: h from table ``table_row`` at (R / Rs)^2,
    N = A alpha_Rs / Rs (``sis.SUB_COLUMNS``)."""
    rs = np.maximum(kw["Rs"], NFW_RS_MIN)  # lenstronomy: Rs >= 1e-7 arcsec
    return radial_sub_columns(2.0, kw, affine, kw["alpha_Rs"] / rs, 1.0 / rs**2, table_row)


PROFILE = LensProfile(
    name="NFW",
    params={
        "Rs": "scale radius, arcsec",
        "alpha_Rs": "deflection at Rs, arcsec",
        "center_x": "arcsec",
        "center_y": "arcsec",
    },
    alpha=alpha_nfw,
    role="subhalo",
    strength="alpha_Rs",
    check=lambda kw, key: check_radial(PROFILE, kw, key),
    torch_eval="radial_table",
    grid_eval="radial_table",
    kernel=KernelPacking("sub", 2.0, SUB_COLUMNS, pack_tabulated),  # pack(kw, affine, table_row)
    radial_kwargs=lambda tau: {},
)

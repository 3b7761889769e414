"""SIS: singular isothermal sphere (lenstronomy 'SIS'), a subhalo profile.

alpha = theta_E (dx, dy) / r, 0 at r = 0. Kernel: the ``sub`` section, closed form (h = 1 / R).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from lensml.sim.profiles.base import (
    KernelPacking,
    LensProfile,
    Param,
    check_positive,
    checked_params,
    param,
    shifted,
)


def alpha_sis(x: Tensor, y: Tensor, theta_E: Param, center_x: Param = 0.0, center_y: Param = 0.0):
    """Singular isothermal sphere (lenstronomy 'SIS'): alpha = theta_E * (dx, dy) / r; 0 at r = 0."""
    dx, dy = shifted(x, y, center_x, center_y)
    r = torch.sqrt(dx * dx + dy * dy)
    a = param(theta_E, x) / torch.where(r > 0, r, torch.ones_like(r))
    return a * dx, a * dy


def _check(kwargs: Mapping, key_prefix: str) -> dict[str, np.ndarray]:
    out = checked_params(PROFILE, kwargs, key_prefix)
    check_positive(out, "theta_E", key_prefix, "0.01 (arcsec)")
    return out


def _pack(kw: Mapping[str, np.ndarray], affine: np.ndarray) -> np.ndarray:
    """``sub`` columns: h = 1 / R, N = A theta_E (g -= h N (dx, dy))."""
    return radial_sub_columns(1.0, kw, affine, kw["theta_E"], np.zeros(len(kw["theta_E"])), None)


def radial_sub_columns(
    flag: float,
    kw: Mapping[str, np.ndarray],
    affine: np.ndarray,
    strength: np.ndarray,
    inv_rs2: np.ndarray,
    table_row: np.ndarray | None,
) -> np.ndarray:
    """The kernel's ``sub`` row of a radial profile (``SUB_COLUMNS``): flag, centre, 1 / Rs^2, table row,
    N = A strength (2 x 2, row-major)."""
    n = len(strength)
    cx = kw.get("center_x", np.zeros(n))
    cy = kw.get("center_y", np.zeros(n))
    nmat = affine * strength[:, None, None]
    row = np.zeros(n) if table_row is None else table_row
    cols = [np.full(n, flag), cx, cy, inv_rs2, row, *(nmat[:, i, j] for i in (0, 1) for j in (0, 1))]
    return np.stack(cols, -1)


#: Columns of the kernel's ``sub`` section (shared by every radial profile: SIS, NFW, TNFW).
SUB_COLUMNS = ("center_x", "center_y", "inv_rs2", "table_row", "n00", "n01", "n10", "n11")

PROFILE = LensProfile(
    name="SIS",
    params={"theta_E": "Einstein radius, arcsec", "center_x": "arcsec", "center_y": "arcsec"},
    alpha=alpha_sis,
    role="subhalo",
    strength="theta_E",
    check=_check,
    kernel=KernelPacking("sub", 1.0, SUB_COLUMNS, _pack),
)

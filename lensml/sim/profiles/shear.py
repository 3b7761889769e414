"""SHEAR: external shear (lenstronomy 'SHEAR'), zero deflection at (ra_0, dec_0).

alpha = (g1 dx + g2 dy, g2 dx - g1 dy). Linear in theta: the fast paths fold it into the affine map from the
image grid to the source grid (``grid_terms.fold_shear``), so it costs no pass over the rays.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import Tensor

from lensml.sim.profiles.base import KernelPacking, LensProfile, Param, checked_params, param, shifted


def alpha_shear(x: Tensor, y: Tensor, gamma1: Param, gamma2: Param, ra_0: Param = 0.0, dec_0: Param = 0.0):
    """External shear (lenstronomy 'SHEAR'), zero deflection at (ra_0, dec_0)."""
    dx, dy = shifted(x, y, ra_0, dec_0)
    g1, g2 = param(gamma1, x), param(gamma2, x)
    return g1 * dx + g2 * dy, g2 * dx - g1 * dy


def _check(kwargs: Mapping, key_prefix: str) -> dict[str, np.ndarray]:
    return checked_params(PROFILE, kwargs, key_prefix)


PROFILE = LensProfile(
    name="SHEAR",
    params={"gamma1": "shear component", "gamma2": "shear component", "ra_0": "arcsec", "dec_0": "arcsec"},
    alpha=alpha_shear,
    role="shear",
    optional=("ra_0", "dec_0"),
    check=_check,
    kernel=KernelPacking("linear", 0.0, ()),
)

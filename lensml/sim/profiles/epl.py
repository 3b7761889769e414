"""EPL: elliptical power law (lenstronomy 'EPL'), Tessore & Metcalf (2015), a macro-lens profile.

kappa = (3 - gamma) / 2 (theta_E / sqrt(q x'^2 + y'^2 / q))^(gamma - 1) in the frame of the major axis;
``b = theta_E sqrt(q)``, ``t = gamma - 1`` in (0, 2); the angular hypergeometric function is summed as their
recurrence series to float precision (``epl_series_terms``). Ellipticity convention:
``lensml.sim.profiles.base``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from lensml.errors import ConfigError
from lensml.sim.profiles.base import (
    MAX_ECC,
    KernelPacking,
    LensProfile,
    Param,
    param,
    phi_q_terms,
    rotate_in,
    rotate_out,
    shifted,
)
from lensml.sim.profiles.sie import check_elliptical, macro_columns, sie_terms

GAMMA_RANGE = (1.0, 3.0)  # open interval: EPL needs t = gamma - 1 in (0, 2)
_EPL_MAX_TERMS = 2000


def epl_series_terms(c_max: float, dtype: torch.dtype) -> int:
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
    e1_t, e2_t = param(e1, x), param(e2, x)
    cos, sin, q, _ = phi_q_terms(e1_t, e2_t)
    t = param(gamma, x) - 1
    dx, dy = shifted(x, y, center_x, center_y)
    xr, yr = rotate_in(dx, dy, cos, sin)
    zx, zy = q * xr, yr
    r = torch.sqrt(zx * zx + zy * zy)
    r_safe = torch.where(r > 0, r, torch.ones_like(r))
    cphi, sphi = zx / r_safe, zy / r_safe  # e^{i phi}; (0, 0) at the centre -> alpha = 0 there
    c2, s2 = cphi * cphi - sphi * sphi, 2 * cphi * sphi  # e^{2 i phi}
    f = (1 - q) / (1 + q)
    c_max = float(torch.clamp(torch.sqrt(e1_t * e1_t + e2_t * e2_t), max=MAX_ECC).max())
    om_re, om_im = cphi, sphi
    sum_re, sum_im = cphi.clone(), sphi.clone()
    for n in range(1, epl_series_terms(c_max, x.dtype)):
        fac = -f * (2 * n - 2 + t) / (2 * n + 2 - t)
        om_re, om_im = fac * (om_re * c2 - om_im * s2), fac * (om_re * s2 + om_im * c2)
        sum_re = sum_re + om_re
        sum_im = sum_im + om_im
    b = param(theta_E, x) * torch.sqrt(q)
    amp = 2 / (1 + q) * b**t * r_safe ** (1 - t)  # = 2 b / (1 + q) (b / R)^(t - 1); exactly 0 when b = 0
    return rotate_out(amp * sum_re, amp * sum_im, cos, sin)


#: The EPL's own macro columns: f = |e|, t = gamma - 1, series terms (float32 precision),
#: 2 b^t / (1 + q), and one unused.
EPL_COLUMNS = ("f", "t", "n_terms", "amp", "unused")


def _pack(kw: Mapping[str, np.ndarray], affine: np.ndarray) -> np.ndarray:
    """Flag 3 and ``sie.MACRO_COLUMNS`` with the ``EPL_COLUMNS``; C = A R(-phi) (the amplitude is own)."""
    t = sie_terms(kw)  # the frame of the major axis, q and phi: as the SIE
    q, cos, sin = t.q, t.cos, t.sin
    f = (1 - q) / (1 + q)
    terms = np.array([epl_series_terms(float(e), torch.float32) for e in f], dtype=float)
    slope = kw["gamma"] - 1
    amp = 2 / (1 + q) * (kw["theta_E"] * np.sqrt(q)) ** slope
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # back to the sky
    own = [f, slope, terms, amp, np.zeros_like(q)]
    return np.concatenate([np.full((q.size, 1), 3.0), macro_columns(t, affine, rot, own)], -1)


def _check(kwargs: Mapping, key_prefix: str) -> dict[str, np.ndarray]:
    out = check_elliptical(PROFILE, kwargs, key_prefix)
    g = out["gamma"]
    if np.any(g <= GAMMA_RANGE[0]) or np.any(g >= GAMMA_RANGE[1]):
        raise ConfigError(
            f"{key_prefix}.gamma = {kwargs['gamma']!r} must be in the open interval {GAMMA_RANGE} "
            "(3D power-law slope; 2 = isothermal); set e.g. 2.0."
        )
    return out


PROFILE = LensProfile(
    name="EPL",
    params={
        "theta_E": "Einstein radius (product-averaged), arcsec",
        "gamma": "3D power-law slope, 2 = isothermal, in (1, 3)",
        "e1": "complex ellipticity modulus, (1 - q) / (1 + q) cos 2 phi",
        "e2": "complex ellipticity modulus, (1 - q) / (1 + q) sin 2 phi",
        "center_x": "arcsec",
        "center_y": "arcsec",
    },
    alpha=alpha_epl,
    role="macro",
    strength="theta_E",
    check=_check,
    torch_eval="series_grouped",
    kernel=KernelPacking("macro", 3.0, EPL_COLUMNS, _pack),
    extra={"prior_ranges": {"gamma": (GAMMA_RANGE[0], GAMMA_RANGE[1], True, True)}},
)

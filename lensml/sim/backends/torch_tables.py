"""Universal radial deflection tables for the torch paths: |alpha|(R) / R of a radial profile (NFW, TNFW) with
Rs = 1, alpha_Rs = 1, at log-spaced radii, and their lookup on flat buffers (``torch_grid``,
``torch_sparse.radial_alpha``). The profile's ``radial_kwargs`` give the table's other parameters.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lensml.sim.profiles import PROFILES

#: Flat buffers are padded to a multiple of this many elements (SIMD block x up to 8 threads).
PAD = 256

#: ln(R / Rs) range and size of the universal NFW / TNFW tables (step 0.008 in ln x: relative error ~1e-5)
LN_X_LO, LN_X_HI, RADIAL_TABLE_SIZE = math.log(1e-6), math.log(1e8), 4096
_TABLES: dict[tuple[str, float, str, str], tuple[Tensor, Tensor]] = {}


def _radial_table(name: str, tau: float, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """ln(|alpha| / R) of profile ``name`` with Rs = 1, alpha_Rs = 1 (and r_trunc = tau) at
    ``RADIAL_TABLE_SIZE`` radii log-spaced in [1e-6, 1e8], and its forward differences; cached.

    |alpha|(R) / R = alpha_Rs / Rs * h(R / Rs) for NFW and TNFW (at fixed tau = r_trunc / Rs), lenstronomy's
    small-radius clamps included (they act on R / Rs), so one table serves every sample.
    """
    key = (name, tau, str(dtype), str(device))
    if key not in _TABLES:
        x = torch.exp(torch.linspace(LN_X_LO, LN_X_HI, RADIAL_TABLE_SIZE, dtype=torch.float64))
        kw = {"Rs": 1.0, "alpha_Rs": 1.0} | PROFILES[name].radial_kwargs(key[1])
        ax, _ = PROFILES[name].alpha(x, torch.zeros_like(x), **kw)
        ln_h = torch.log(torch.clamp(ax / x, min=1e-300))
        slope = torch.diff(ln_h, append=ln_h[-1:])  # ln_h[k + 1] - ln_h[k]
        _TABLES[key] = (ln_h.to(dtype=dtype, device=device), slope.to(dtype=dtype, device=device))
    return _TABLES[key]


def table_lookup(name: str, tau: float, q2: Tensor) -> Tensor:
    """h(x) of profile ``name`` (r_trunc / Rs = ``tau``) at ``q2 = (x / 1e-6)^2``, x = R / Rs, from the table.

    ``q2`` is a flat contiguous buffer, overwritten (padding elements included: give zeros there); the
    table coordinate is ln(q2) / (2 step), clamped to the table (lenstronomy's core below x = 1e-6).
    """
    ln_h, slope = _radial_table(name, tau, q2.dtype, q2.device)
    step = (LN_X_HI - LN_X_LO) / (RADIAL_TABLE_SIZE - 1)
    t = q2.log_().mul_(0.5 / step).clamp_(0.0, RADIAL_TABLE_SIZE - 1.000001)
    i0 = t.int()  # t >= 0: truncation is the floor (int32 indices: index_select is the fast gather)
    w = t.frac_()
    return ln_h.index_select(0, i0).addcmul_(w, slope.index_select(0, i0)).exp_()

"""Deflections of a batch with torch operations, each profile only on the samples where it is non-zero, with
per-sample values that do not depend on the rest of the batch (``deflection_sparse``, ``ray_shoot_sparse``).

How a profile is evaluated is its ``torch_eval`` (``lensml.sim.profiles.base.TORCH_EVAL``): plainly,
lane-aligned (atan2 / pow of per-sample values, padded so that every element takes torch's SIMD path),
grouped by series length (EPL), or from the universal radial tables (``torch_tables``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from lensml.sim.backends.grid_terms import tau_key
from lensml.sim.backends.torch_tables import LN_X_LO, PAD, table_lookup
from lensml.sim.profiles import PROFILES, get_profile
from lensml.sim.profiles.epl import epl_series_terms


def _t(a: object, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    if isinstance(a, Tensor):
        return a.to(dtype=dtype, device=device)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def radial_alpha(name: str, x: Tensor, y: Tensor, kw: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Deflection of a circular profile (NFW, TNFW) at positions (B, H, W) from the universal tables.

    |alpha|(R) / R = alpha_Rs / Rs h(R / Rs), h interpolated in (ln x, ln h) from exact float64 tables
    (``torch_grid.table_lookup``; relative error ~1e-5 of the deflection). One table per r_trunc / Rs.
    """
    b = kw["center_x"].shape[0]
    kwn = {k: v.detach().to(torch.float64).cpu().numpy().reshape(b) for k, v in kw.items()}
    rs = np.maximum(kwn["Rs"], 1e-7)
    cx, cy = (kw[k].reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype) for k in ("center_x", "center_y"))
    dx, dy = x - cx, y - cy
    scale = torch.as_tensor(1.0 / (rs * np.exp(LN_X_LO)) ** 2, dtype=x.dtype, device=x.device)
    q2 = torch.addcmul(dx * dx, dy, dy).mul_(scale.reshape(-1, *([1] * (x.ndim - 1))))
    h = torch.empty_like(q2)
    taus = tau_key(kwn)
    for tau in np.unique(taus):
        rows = torch.as_tensor(np.flatnonzero(taus == tau), device=x.device)
        part = q2.index_select(0, rows).reshape(-1)
        flat = torch.zeros(-(-part.numel() // PAD) * PAD, dtype=x.dtype, device=x.device)
        flat[: part.numel()] = part
        h[rows] = table_lookup(name, float(tau), flat)[: part.numel()].view(-1, *q2.shape[1:])
    factor = torch.as_tensor(kwn["alpha_Rs"] / rs, dtype=x.dtype, device=x.device)
    h.mul_(factor.reshape(-1, *([1] * (x.ndim - 1))))
    return h * dx, h.mul_(dy)


#: torch's CPU loops handle 2 SIMD registers at a time (32 float32 with AVX-512); the leftover elements of a
#: tensor go through scalar routines that, for atan2, atanh and pow, may differ from the vector ones in the
#: last bit. A sample's value would then depend on where it sits in its batch.
_SIMD_BLOCK = 32


def _call_lane_aligned(
    name: str, x: Tensor, y: Tensor, kw: Mapping[str, Tensor]
) -> tuple[Tensor, Tensor]:
    """Deflection of profile ``name`` with per-sample values that do not depend on the rest of the batch.

    (B,) parameters are given as contiguous (B, 1, W) rows and the batch is padded (repeating its first
    sample) so that B * W is a multiple of ``_SIMD_BLOCK``: every element then takes the vector path.
    """
    b = max((v.shape[0] for v in kw.values() if v.ndim >= 1), default=1)
    w = x.shape[-1]
    pad = 0
    while ((b + pad) * w) % _SIMD_BLOCK and pad < _SIMD_BLOCK:
        pad += 1

    def rows(v: Tensor) -> Tensor:
        v = v.reshape(-1, 1, 1).expand(-1, 1, w)
        return torch.cat((v, v[:1].expand(pad, -1, -1))).contiguous() if pad else v.contiguous()

    kw2 = {k: rows(v) if v.ndim == 1 else v for k, v in kw.items()}
    if x.shape[0] != 1 and pad:
        x = torch.cat((x, x[:1].expand(pad, -1, -1)))
        y = torch.cat((y, y[:1].expand(pad, -1, -1)))
    ax, ay = PROFILES[name].alpha(x, y, **kw2)
    return ax[:b], ay[:b]


def _alpha_series_grouped(
    name: str, x: Tensor, y: Tensor, kw: Mapping[str, Tensor]
) -> tuple[Tensor, Tensor]:
    """Deflections of an elliptical series profile (EPL), evaluated together only for samples that need the
    same number of series terms.

    ``alpha_epl`` sums its series to the precision the largest ellipticity of the batch needs; grouping by
    term count makes every sample's value independent of the rest of its batch.
    """
    e = torch.clamp(torch.sqrt(kw["e1"] * kw["e1"] + kw["e2"] * kw["e2"]), max=0.9999)
    if e.ndim == 0:
        return PROFILES[name].alpha(x, y, **kw)
    terms = [epl_series_terms(float(c), x.dtype) for c in e.cpu()]
    b = e.shape[0]
    ax = torch.empty((b, *x.shape[1:]), dtype=x.dtype, device=x.device)
    ay = torch.empty_like(ax)
    for n in sorted(set(terms)):
        rows = torch.tensor([i for i, t in enumerate(terms) if t == n], device=x.device)
        xs = x if x.shape[0] == 1 else x[rows]
        ys = y if y.shape[0] == 1 else y[rows]
        dax, day = _call_lane_aligned(
            name, xs, ys, {k: v[rows] if v.ndim else v for k, v in kw.items()}
        )
        ax[rows], ay[rows] = dax, day
    return ax, ay


def ray_shoot_sparse(
    x: Tensor,
    y: Tensor,
    lens_model_list: Sequence[str],
    kwargs_list: Sequence[Mapping[str, Tensor]],
    radial_table: bool = True,
) -> tuple[Tensor, Tensor]:
    """beta = theta - alpha(theta) for a batch; x, y of shape (1, H, W) (shared grid) or (B, H, W).

    A profile is evaluated only on the samples where its strength is non-zero (e.g. a subhalo of mass 0
    contributes exactly 0), which changes no value but saves the time of the absent subhaloes. With
    ``radial_table`` the NFW/TNFW deflections are interpolated from exact tables (radial_alpha).
    """
    ax, ay = deflection_sparse(x, y, lens_model_list, kwargs_list, radial_table)
    b = max((v.shape[0] for kw in kwargs_list for v in kw.values() if v.ndim >= 1), default=x.shape[0])
    if ax is None:
        return x.expand(b, *x.shape[1:]).clone(), y.expand(b, *x.shape[1:]).clone()
    return torch.sub(x, ax, out=ax), torch.sub(y, ay, out=ay)


def deflection_sparse(
    x: Tensor,
    y: Tensor,
    lens_model_list: Sequence[str],
    kwargs_list: Sequence[Mapping[str, Tensor]],
    radial_table: bool = True,
) -> tuple[Tensor | None, Tensor | None]:
    """Summed deflection (B, H, W) of the profiles (None if there is none), see ``ray_shoot_sparse``."""
    b = max((v.shape[0] for kw in kwargs_list for v in kw.values() if v.ndim >= 1), default=x.shape[0])
    shape = (b, *x.shape[1:])
    ax = ay = None  # the summed deflection, accumulated in place
    for name, kw in zip(lens_model_list, kwargs_list):
        strength = kw.get(get_profile(name).strength or "")
        rows = None
        if strength is not None and not bool((strength != 0).all()):
            rows = torch.nonzero(strength != 0).flatten()
            if rows.numel() == 0:
                continue
            kw = {k: v[rows] if v.ndim else v for k, v in kw.items()}
        if name == "SHEAR" and ax is not None and rows is None:
            _add_shear(ax, ay, x, y, kw)
            continue
        xs = x if x.shape[0] == 1 or rows is None else x[rows]
        ys = y if y.shape[0] == 1 or rows is None else y[rows]
        how = get_profile(name).torch_eval
        if how == "series_grouped":
            dax, day = _alpha_series_grouped(name, xs, ys, kw)
        elif how == "lane_aligned":
            dax, day = _call_lane_aligned(name, xs, ys, kw)
        elif radial_table and how == "radial_table":
            kw = {
                k: v.expand(xs.shape[0] if rows is None else rows.numel()) if v.ndim == 0 else v
                for k, v in {"center_x": torch.zeros(()), "center_y": torch.zeros(()), **kw}.items()
            }
            dax, day = radial_alpha(name, xs, ys, kw)
        else:
            dax, day = PROFILES[name].alpha(xs, ys, **kw)
        if ax is None:
            ax = torch.zeros(shape, dtype=x.dtype, device=x.device)
            ay = torch.zeros(shape, dtype=x.dtype, device=x.device)
        if rows is None:
            ax.add_(dax)
            ay.add_(day)
        else:
            n_rows = rows.numel()
            ax.index_add_(0, rows, dax.expand(n_rows, *x.shape[1:]))
            ay.index_add_(0, rows, day.expand(n_rows, *x.shape[1:]))
    return ax, ay


def _add_shear(ax: Tensor, ay: Tensor, x: Tensor, y: Tensor, kw: Mapping[str, Tensor]) -> None:
    """ax, ay += the external shear deflection (lenstronomy 'SHEAR', see ``alpha_shear``), in place."""
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    g1 = _t(kw["gamma1"], x.dtype, x.device).reshape(-1, *([1] * (x.ndim - 1)))
    g2 = _t(kw["gamma2"], x.dtype, x.device).reshape(-1, *([1] * (x.ndim - 1)))
    ra = _t(kw.get("ra_0", zero), x.dtype, x.device).reshape(-1, *([1] * (x.ndim - 1)))
    dec = _t(kw.get("dec_0", zero), x.dtype, x.device).reshape(-1, *([1] * (x.ndim - 1)))
    dx = x - ra if bool((ra != 0).any()) else x
    dy = y - dec if bool((dec != 0).any()) else y
    ax.addcmul_(dx, g1).addcmul_(dy, g2)
    ay.addcmul_(dx, g2).addcmul_(dy, -g1)

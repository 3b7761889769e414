"""Ray shooting on the shared regular image grid, straight to source-grid coordinates (torch fast path).

The image grid is the same for every sample: ray (i, j) sits at ``theta = (coords[j], coords[i])`` arcsec.
Any per-sample affine function ``p0 + p1 x + p2 y`` of it is a row term plus a column term, written in one
pass (``_Rays.outer``). The source-grid coordinates that ``grid_sample`` reads,
``g = A beta + c = A (theta - alpha(theta)) + c`` (``A``, ``c`` from the source placement), are accumulated
profile by profile, each profile adding ``C u + D v`` for two per-ray maps (u, v) and per-sample 2 x 2
coefficients folded in float64 on the parameters:

- ``SHEAR`` (any ``ra_0``, ``dec_0``) is linear in theta: folded into ``A`` and ``c``, no pass over the rays.
- ``SIE``: the two rotated-frame terms atan2(k x', psi + s) and atanh(k y' / (psi + q^2 s)); the rotation
  back to the sky and the factor b / k go into the coefficients (lenstronomy's NIE with s = 1e-10 arcsec,
  conventions as ``lensml.sim.profiles.sie.alpha_sie``).
- ``NFW`` / ``TNFW``: |alpha| / R from a universal exact table (``radial_ratio``), times (dx, dy).
- any other profile (``SIS``, ``EPL``, ...): its deflection from ``torch_sparse.deflection_sparse``.

Which path a profile takes is its ``grid_eval`` (``lensml.sim.profiles``).

Profiles are evaluated only on the samples where their strength is non-zero (a prefix of the batch when
the caller orders the samples so, as ``render_torch`` does; any other subset also works).

Per-sample independence: the transcendental functions (atan2, atanh, log, exp) run on flat buffers
padded to a multiple of ``PAD`` elements, so every element takes torch's vectorised path whatever the
batch size, the sample's position in it and the thread count (the scalar remainder loop can differ from the
vector one in the last bit). Additions, products, divisions and square roots are exactly rounded either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from lensml.sim.backends.grid_terms import active_rows, fold_shear, numpy_kwargs, sie_terms, tau_key
from lensml.sim.backends.torch_sparse import deflection_sparse
from lensml.sim.backends.torch_tables import LN_X_LO, PAD, table_lookup
from lensml.sim.profiles import PROFILES


class _Rays:
    """Flat, padded per-ray buffers for ``rows`` samples on the n x n grid ``coords`` (arcsec)."""

    def __init__(self, coords: Tensor, rows: int) -> None:
        self.coords = coords
        self.n = int(coords.shape[0])
        self.rows = rows
        self.size = rows * self.n * self.n
        self.padded = -(-self.size // PAD) * PAD
        self.coords64 = coords.detach().to(torch.float64).cpu().numpy()

    def new(self, dtype: torch.dtype | None = None) -> Tensor:
        t = torch.empty(self.padded, dtype=dtype or self.coords.dtype, device=self.coords.device)
        t[self.size :].zero_()
        return t

    def view(self, flat: Tensor) -> Tensor:
        """The (rows, n, n) image of a flat buffer (row i follows y, column j follows x)."""
        return flat[: self.size].view(self.rows, self.n, self.n)

    def outer(self, p0: np.ndarray, px: np.ndarray, py: np.ndarray) -> Tensor:
        """Flat buffer of ``p0 + px x_j + py y_i`` per sample ((rows,) float64 coefficients), one pass."""
        x = self.coords64
        row = torch.as_tensor(p0[:, None] + px[:, None] * x[None, :], dtype=self.coords.dtype)
        col = torch.as_tensor(py[:, None] * x[None, :], dtype=self.coords.dtype)
        out = self.new()
        dev = self.coords.device
        torch.add(row.to(dev)[:, None, :], col.to(dev)[:, :, None], out=self.view(out))
        return out


def _coef(a: np.ndarray, like: Tensor) -> Tensor:
    """(rows,) float64 coefficients as a (rows, 1, 1) tensor broadcasting against (rows, n, n) views."""
    return torch.as_tensor(a, dtype=like.dtype, device=like.device).reshape(-1, 1, 1)


def _sie_terms(rays: _Rays, kw: Mapping[str, np.ndarray]) -> tuple[Tensor, Tensor, np.ndarray]:
    """SIE per-ray terms (u, v) and the per-sample rotation R(-phi) (b / k) taking them to the sky frame."""
    t = sie_terms(kw)
    q, s, k_safe, cos, sin = t.q, t.s, t.k_safe, t.cos, t.sin
    xq = rays.outer(q * t.x0, q * cos, q * sin)  # q x'
    yr = rays.outer(t.y0, -sin, cos)
    xq_v, yr_v = rays.view(xq), rays.view(yr)
    psi = rays.new()
    psi_v = rays.view(psi)
    torch.addcmul(_coef(q * q * s * s, xq_v), xq_v, xq_v, out=psi_v)  # q^2 (s^2 + x'^2)
    psi_v.addcmul_(yr_v, yr_v).sqrt_()
    den_x = rays.new()
    torch.add(psi_v, _coef(s, psi_v), out=rays.view(den_x))
    psi_v.add_(_coef(q * q * s, psi_v))  # psi + q^2 s
    small = t.small
    if bool(small.any()):
        z1 = rays.view(xq).div(_coef(q, xq_v)).div_(rays.view(den_x))
        z2 = yr_v / psi_v
        kz1, kz2 = z1 * _coef(t.k, z1), z2 * _coef(t.k, z2)
        series = (z1 * (1 - kz1 * kz1 / 3), z2 * (1 + kz2 * kz2 / 3))
    # u = atan2(k x', psi + s) = atan(k x' / (psi + s)) since psi + s > 0; v = atanh(k y' / (psi + q^2 s))
    xq_v.mul_(_coef(k_safe / q, xq_v))
    u = torch.atan2(xq, den_x, out=den_x)
    yr_v.mul_(_coef(k_safe, yr_v)).div_(psi_v)
    v = yr.atanh_()
    if bool(small.any()):
        rows = _coef(small.astype(float), xq_v) > 0
        rays.view(u).copy_(torch.where(rows, series[0], rays.view(u)))
        rays.view(v).copy_(torch.where(rows, series[1], rays.view(v)))
    return u, v, t.rot


def _outer_square(rays: _Rays, out: Tensor, cx: np.ndarray, cy: np.ndarray, scale: np.ndarray) -> None:
    """out = scale ((x_j - cx)^2 + (y_i - cy)^2) per sample, written into the flat buffer ``out``."""
    x = rays.coords64
    dtype, dev = rays.coords.dtype, rays.coords.device
    row = torch.as_tensor(scale[:, None] * (x[None, :] - cx[:, None]) ** 2, dtype=dtype, device=dev)
    col = torch.as_tensor(scale[:, None] * (x[None, :] - cy[:, None]) ** 2, dtype=dtype, device=dev)
    torch.add(row[:, None, :], col[:, :, None], out=rays.view(out))


def radial_ratio(name: str, rays: _Rays, kw: Mapping[str, np.ndarray]) -> tuple[Tensor, np.ndarray]:
    """h(R / Rs) (flat buffer) and the per-sample factor alpha_Rs / Rs: |alpha|(R) / R = factor * h.

    h is interpolated linearly in (ln x, ln h) from the universal table (``_radial_table``); ``kw`` holds
    (R,) arrays of Rs, alpha_Rs, center_x, center_y (and r_trunc for TNFW, with one r_trunc / Rs).
    """
    rs = np.maximum(kw["Rs"], 1e-7)  # lenstronomy: Rs >= 1e-7 arcsec
    taus = tau_key(kw)
    tau = float(taus[0])
    if not bool((taus == tau).all()):
        raise ValueError("radial_ratio: the samples must share r_trunc / Rs; call it per value.")
    t = rays.new()
    _outer_square(rays, t, kw["center_x"], kw["center_y"], 1.0 / (rs * math.exp(LN_X_LO)) ** 2)
    out = table_lookup(name, tau, t)
    return out, kw["alpha_Rs"] / rs


def source_grid_coordinates(
    coords: Tensor,
    lens_model_list: Sequence[str],
    kwargs_lens: Sequence[Mapping[str, object]],
    affine: np.ndarray,
    offset: np.ndarray,
) -> Tensor:
    """Source-grid coordinates (B, n, n, 2) of the rays of the regular grid ``coords`` (n,), arcsec.

    ``g = affine (theta - alpha(theta)) + offset`` per sample (``affine`` (B, 2, 2), ``offset`` (B, 2),
    float64), ``alpha`` the summed deflection of ``lens_model_list`` with batch-first lenstronomy kwargs.
    The result is in ``coords``' dtype; the last axis is (g_x, g_y) as ``grid_sample`` reads it.
    """
    b = affine.shape[0]
    m, c, todo = fold_shear(affine, offset, numpy_kwargs(lens_model_list, kwargs_lens, b))
    rays = _Rays(coords, b)
    g = [rays.outer(c[:, j], m[:, j, 0], m[:, j, 1]) for j in range(2)]
    g_v = [rays.view(t) for t in g]
    for name, kw in todo:
        rows = active_rows(name, kw, b)
        if rows.size == 0:
            continue
        if PROFILES[name].grid_eval == "radial_table":  # one universal table per r_trunc / Rs
            taus = tau_key({k: v[rows] for k, v in kw.items()})
            for tau in np.unique(taus):
                part = rows[taus == tau]
                _add_profile(g_v, b, coords, affine[part], name, part, {k: v[part] for k, v in kw.items()})
        else:
            _add_profile(g_v, b, coords, affine[rows], name, rows, {k: v[rows] for k, v in kw.items()})
    return torch.view_as_real(torch.complex(g_v[0], g_v[1]))  # interleaved (B, n, n, 2), one pass


def _add_profile(
    g_v: list[Tensor],
    b: int,
    coords: Tensor,
    a_rows: np.ndarray,
    name: str,
    rows: np.ndarray,
    kw: dict[str, np.ndarray],
) -> None:
    """g[rows] -= A alpha for one profile on the samples ``rows`` (its kwargs ``kw`` already selected)."""
    rays = _Rays(coords, rows.size)
    dtype, dev = coords.dtype, coords.device
    how = PROFILES[name].grid_eval
    if how == "sie_terms":
        u, v, rot = _sie_terms(rays, kw)
        coef = -np.einsum("bij,bjk->bik", a_rows, rot)  # g -= A R (u, v)
        _accumulate(g_v, rows, b, [(rays.view(u), coef[:, :, 0]), (rays.view(v), coef[:, :, 1])])
    elif how == "radial_table":
        kw.setdefault("center_x", np.zeros(rows.size))
        kw.setdefault("center_y", np.zeros(rows.size))
        h, factor = radial_ratio(name, rays, kw)
        ratio = rays.view(h)
        # alpha = factor h (dx, dy): g_j -= h * factor (A_j0 dx + A_j1 dy), a row term plus a column term
        x = rays.coords64
        dx = (x[None, :] - kw["center_x"][:, None]) * factor[:, None]
        dy = (x[None, :] - kw["center_y"][:, None]) * factor[:, None]
        terms = []
        for j in range(2):
            row = torch.as_tensor(-a_rows[:, j, 0, None] * dx, dtype=dtype, device=dev)
            col = torch.as_tensor(-a_rows[:, j, 1, None] * dy, dtype=dtype, device=dev)
            terms.append((ratio, row[:, None, :], col[:, :, None]))
        _accumulate_radial(g_v, rows, b, terms)
    else:
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        kw_t = {k: torch.as_tensor(v, dtype=dtype, device=dev) for k, v in kw.items()}
        ax, ay = deflection_sparse(xx[None], yy[None], [name], [kw_t])
        _accumulate(g_v, rows, b, [(ax, -a_rows[:, :, 0]), (ay, -a_rows[:, :, 1])])


def _accumulate(g_v: list[Tensor], rows: np.ndarray, b: int, terms: list[tuple[Tensor, np.ndarray]]) -> None:
    """g_j[rows] += sum over terms of coef[:, j] * term (terms (R, n, n), coef (R, 2))."""
    prefix = rows.size == b or bool(rows[-1] == rows.size - 1)
    for j in range(2):
        if prefix:
            target = g_v[j][: rows.size]
            for term, coef in terms:
                target.addcmul_(term, _coef(coef[:, j], term))
        else:
            total = None
            for term, coef in terms:
                part = term * _coef(coef[:, j], term)
                total = part if total is None else total.add_(part)
            g_v[j].index_add_(0, torch.as_tensor(rows, device=total.device), total)


def _accumulate_radial(
    g_v: list[Tensor], rows: np.ndarray, b: int, terms: list[tuple[Tensor, Tensor, Tensor]]
) -> None:
    """g_j[rows] += ratio * (row_j + col_j) (ratio (R, n, n), row_j (R, 1, n), col_j (R, n, 1))."""
    prefix = rows.size == b or bool(rows[-1] == rows.size - 1)
    for j, (ratio, row, col) in enumerate(terms):
        if prefix:
            g_v[j][: rows.size].addcmul_(ratio, row).addcmul_(ratio, col)
        else:
            part = (ratio * row).addcmul_(ratio, col)
            g_v[j].index_add_(0, torch.as_tensor(rows, device=part.device), part)

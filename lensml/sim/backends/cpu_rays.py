"""Compiled CPU kernel (numba): rays of the regular image grid straight to source-grid coordinates, float32.

The same arithmetic as ``torch_grid.source_grid_coordinates`` (``g = A (theta - alpha(theta)) + c``,
per-sample constants from ``grid_terms``), fused into one pass per image row instead of a dozen passes
over the whole chunk: a row is built in two short buffers that stay in the L1 cache, then written out
interleaved as ``grid_sample`` reads it. The SIE terms use the SIMD-friendly ``simd_math`` functions, so the
row loop is vectorised; a radial subhalo (NFW, TNFW) is looked up in a table indexed by the float32 bit
pattern of ``(R / Rs)^2`` (``radial_table``); SIS is closed-form.

Supported lens lists: any number of ``SHEAR`` terms, at most one ``SIE`` and at most one radial profile
(``SIS``, ``NFW`` or ``TNFW``); anything else (``EPL``, two subhaloes, ...) returns None and the caller uses
the torch path. Each sample's row loops depend only on that sample, and the polynomial functions give the
same bits in the vector body and the scalar remainder of a loop: a sample's coordinates do not depend on the
batch it is rendered in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from lensml.jit import kernel
from lensml.sim.backends.grid_terms import active_rows, fold_shear, numpy_kwargs, sie_terms, tau_key
from lensml.sim.backends.simd_math import F32, atan_f32, atanh_f32, f32_bits

#: Radial table: nodes at float32 values of (R / Rs)^2 whose low ``_TABLE_SHIFT`` mantissa bits are 0, i.e.
#: 2^(23 - 15) = 256 nodes per octave of (R / Rs)^2 (relative step 2^-8); linear interpolation in (R / Rs)^2
#: between nodes (relative error ~2e-6 of h), constant outside [1e-6, 1e8] Rs (the range of the torch table).
_TABLE_SHIFT = 15
_TABLE_X_RANGE = (1e-6, 1e8)
_TABLES: dict[tuple[str, float], np.ndarray] = {}
RADIAL_PROFILES = ("NFW", "TNFW")


def _table_bits() -> tuple[int, int]:
    lo, hi = (np.array([x * x for x in _TABLE_X_RANGE], dtype=np.float32).view(np.int32) >> _TABLE_SHIFT)
    return int(lo), int(hi)


def radial_table(name: str, tau: float) -> np.ndarray:
    """h(x) = |alpha|(R) / R of profile ``name`` (Rs = 1, alpha_Rs = 1, r_trunc = tau) at the table nodes.

    Returns (2, K) float32: row 0 is h at the nodes, row 1 the difference to the next node. Built in float64
    from ``torch_deflections`` (lenstronomy's conventions and small-radius clamps, tested against
    lenstronomy); cached per (name, tau).
    """
    key = (name, float(tau))
    if key not in _TABLES:
        import torch

        from lensml.sim.backends.torch_lens import PROFILES

        lo, hi = _table_bits()
        q2 = (np.arange(lo, hi + 1, dtype=np.int64) << _TABLE_SHIFT).astype(np.int32).view(np.float32)
        x = torch.as_tensor(np.sqrt(q2.astype(np.float64)))
        kw = {"Rs": 1.0, "alpha_Rs": 1.0} | ({"r_trunc": float(tau)} if name == "TNFW" else {})
        ax, _ = PROFILES[name](x, torch.zeros_like(x), **kw)
        h = (ax / x).numpy()
        table = np.stack([h, np.append(np.diff(h), 0.0)]).astype(np.float32)
        table.setflags(write=False)
        _TABLES[key] = table
    return _TABLES[key]


@kernel
def _rays_kernel(
    coords: np.ndarray,
    lin: np.ndarray,
    sie: np.ndarray,
    sub: np.ndarray,
    tables: np.ndarray,
    table_lo: int,
    out: np.ndarray,
) -> None:
    """out[b, i, j] = (g_x, g_y) of the ray at (coords[j], coords[i]) (arcsec) for every sample b.

    Per-sample float64 columns: ``lin`` (B, 6): g_x = l0 + l1 x + l2 y, g_y = l3 + l4 x + l5 y (shear folded
    in). ``sie`` (B, 17): flag (0 none, 1 SIE, 2 its series), xq = c1 + c2 x + c3 y, yr = c4 + c5 x + c6 y,
    q^2 s^2, s, q^2 s, k / q, k, C (2 x 2, row-major; g -= C (u, v)), q (``grid_terms.SieTerms``). ``sub``
    (B, 9): flag (0 none, 1 SIS, 2 tabulated), centre x, y, 1 / Rs^2, table row, N (2 x 2; g -= h N (dx, dy)
    with h = 1 / R for SIS, the table's h(R / Rs) otherwise). ``tables`` (T, 2, K): ``radial_table`` rows
    whose first node has index ``table_lo``.
    """
    n = coords.shape[0]
    n_tab = tables.shape[2]
    x32 = np.empty(n, np.float32)
    for j in range(n):
        x32[j] = F32(coords[j])
    gx = np.empty(n, np.float32)
    gy = np.empty(n, np.float32)
    bits_lo = np.int32(table_lo << 15)
    bits_hi = np.int32((table_lo + n_tab - 1) << 15)
    for b in range(lin.shape[0]):
        l1, l4 = F32(lin[b, 1]), F32(lin[b, 4])
        flag = sie[b, 0]
        c2, c5 = F32(sie[b, 2]), F32(sie[b, 5])
        qqss, s, q2s = F32(sie[b, 7]), F32(sie[b, 8]), F32(sie[b, 9])
        kq, k = F32(sie[b, 10]), F32(sie[b, 11])
        m00, m01, m10, m11 = F32(sie[b, 12]), F32(sie[b, 13]), F32(sie[b, 14]), F32(sie[b, 15])
        inv_q = F32(1.0 / sie[b, 16]) if flag == 2 else F32(1.0)
        kind = sub[b, 0]
        sx, sy, inv_rs2 = F32(sub[b, 1]), F32(sub[b, 2]), F32(sub[b, 3])
        row = int(sub[b, 4])
        n00, n01, n10, n11 = F32(sub[b, 5]), F32(sub[b, 6]), F32(sub[b, 7]), F32(sub[b, 8])
        for i in range(n):
            y = coords[i]
            rx = F32(lin[b, 0] + lin[b, 2] * y)
            ry = F32(lin[b, 3] + lin[b, 5] * y)
            for j in range(n):
                gx[j] = rx + l1 * x32[j]
                gy[j] = ry + l4 * x32[j]
            if flag != 0:
                xq_r = F32(sie[b, 1] + sie[b, 3] * y)
                yr_r = F32(sie[b, 4] + sie[b, 6] * y)
                if flag == 1:
                    for j in range(n):
                        xq = xq_r + c2 * x32[j]
                        yr = yr_r + c5 * x32[j]
                        psi = math.sqrt(qqss + xq * xq + yr * yr)
                        u = atan_f32(kq * xq / (psi + s))
                        v = atanh_f32(k * yr / (psi + q2s))
                        gx[j] = gx[j] - (m00 * u + m01 * v)
                        gy[j] = gy[j] - (m10 * u + m11 * v)
                else:  # nearly circular: atan(k z) / k and atanh(k z) / k by their series
                    for j in range(n):
                        xq = xq_r + c2 * x32[j]
                        yr = yr_r + c5 * x32[j]
                        psi = math.sqrt(qqss + xq * xq + yr * yr)
                        z1 = xq * inv_q / (psi + s)
                        z2 = yr / (psi + q2s)
                        kz1, kz2 = k * z1, k * z2
                        u = z1 * (F32(1.0) - kz1 * kz1 / F32(3.0))
                        v = z2 * (F32(1.0) + kz2 * kz2 / F32(3.0))
                        gx[j] = gx[j] - (m00 * u + m01 * v)
                        gy[j] = gy[j] - (m10 * u + m11 * v)
            if kind != 0:
                dy = F32(y) - sy
                dy2 = dy * dy
                if kind == 1:  # SIS: alpha = theta_E (dx, dy) / r, 0 at r = 0 (theta_E is in N)
                    for j in range(n):
                        dx = x32[j] - sx
                        r2 = dx * dx + dy2
                        h = F32(1.0) / math.sqrt(r2) if r2 > F32(0.0) else F32(0.0)
                        gx[j] = gx[j] - h * (n00 * dx + n01 * dy)
                        gy[j] = gy[j] - h * (n10 * dx + n11 * dy)
                else:  # NFW / TNFW: alpha = (alpha_Rs / Rs) h(R / Rs) (dx, dy) (alpha_Rs / Rs is in N)
                    for j in range(n):
                        dx = x32[j] - sx
                        bits = f32_bits((dx * dx + dy2) * inv_rs2)
                        bits = min(max(bits, bits_lo), bits_hi)
                        t = (bits >> 15) - table_lo
                        w = F32(bits & 0x7FFF) * F32(1.0 / 32768.0)
                        h = tables[row, 0, t] + w * tables[row, 1, t]
                        gx[j] = gx[j] - h * (n00 * dx + n01 * dy)
                        gy[j] = gy[j] - h * (n10 * dx + n11 * dy)
            for j in range(n):
                out[b, i, j, 0] = gx[j]
                out[b, i, j, 1] = gy[j]


def supports(lens_model_list: Sequence[str]) -> bool:
    """Whether the kernel renders this lens list (otherwise use the torch path)."""
    names = [n for n in lens_model_list if n != "SHEAR"]
    macro = [n for n in names if n == "SIE"]
    radial = [n for n in names if n in ("SIS", *RADIAL_PROFILES)]
    return len(macro) <= 1 and len(radial) <= 1 and len(macro) + len(radial) == len(names)


def source_grid_coordinates_cpu(
    coords: np.ndarray,
    lens_model_list: Sequence[str],
    kwargs_lens: Sequence[Mapping[str, object]],
    affine: np.ndarray,
    offset: np.ndarray,
) -> np.ndarray | None:
    """Source-grid coordinates (B, n, n, 2) float32 of the regular grid ``coords`` (n,) arcsec, or None.

    Same contract as ``torch_grid.source_grid_coordinates`` (batch-first lenstronomy kwargs, ``affine``
    (B, 2, 2), ``offset`` (B, 2)); None when the lens list is not ``supports``-ed.
    """
    if not supports(lens_model_list):
        return None
    b = affine.shape[0]
    m, c, todo = fold_shear(affine, offset, numpy_kwargs(lens_model_list, kwargs_lens, b))
    lin = np.stack([c[:, 0], m[:, 0, 0], m[:, 0, 1], c[:, 1], m[:, 1, 0], m[:, 1, 1]], -1)
    sie = np.zeros((b, 17))
    sub = np.zeros((b, 9))
    tables = [np.zeros((2, 1), np.float32)]
    taus: list[float] = []
    for name, kw in todo:
        rows = active_rows(name, kw, b)
        if rows.size == 0:
            continue
        kw = {k: v[rows] for k, v in kw.items()}
        a_rows = affine[rows].astype(np.float64)
        if name == "SIE":
            t = sie_terms(kw)
            q, s, cos, sin, k_safe = t.q, t.s, t.cos, t.sin, t.k_safe
            coef = np.einsum("bij,bjk->bik", a_rows, t.rot)  # g -= A R (u, v)
            sie[rows] = np.stack(
                [
                    np.where(t.small, 2.0, 1.0),
                    q * t.x0,
                    q * cos,
                    q * sin,
                    t.y0,
                    -sin,
                    cos,
                    q * q * s * s,
                    s,
                    q * q * s,
                    k_safe / q,
                    t.k,
                    coef[:, 0, 0],
                    coef[:, 0, 1],
                    coef[:, 1, 0],
                    coef[:, 1, 1],
                    q,
                ],
                -1,
            )
            continue
        cx = kw.get("center_x", np.zeros(rows.size))
        cy = kw.get("center_y", np.zeros(rows.size))
        if name == "SIS":
            kind, strength, inv_rs2, row = 1.0, kw["theta_E"], np.zeros(rows.size), np.zeros(rows.size)
        else:
            rs = np.maximum(kw["Rs"], 1e-7)  # lenstronomy: Rs >= 1e-7 arcsec
            kind, strength, inv_rs2 = 2.0, kw["alpha_Rs"] / rs, 1.0 / rs**2
            row = np.zeros(rows.size)
            for tau in np.unique(tau_key(kw)):
                if tau not in taus:
                    taus.append(tau)
                    tables.append(radial_table(name, tau))
                row[tau_key(kw) == tau] = 1 + taus.index(tau)
        nmat = a_rows * strength[:, None, None]
        n_cols = [nmat[:, i, j] for i in (0, 1) for j in (0, 1)]
        sub[rows] = np.stack([np.full(rows.size, kind), cx, cy, inv_rs2, row, *n_cols], -1)
    lo, hi = _table_bits()
    width = hi - lo + 1 if taus else 1
    stack = np.zeros((len(tables), 2, width), np.float32)
    for i, tab in enumerate(tables[1:], start=1):
        stack[i] = tab
    coords = np.asarray(coords, dtype=np.float64)
    out = np.empty((b, coords.size, coords.size, 2), np.float32)
    _rays_kernel(coords, lin, sie, sub, stack, lo, out)
    return out

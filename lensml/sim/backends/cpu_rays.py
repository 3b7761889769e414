"""Compiled CPU kernels (numba): trace the rays of the regular image grid to the source, sample it, average.

The same arithmetic as ``torch_grid.source_grid_coordinates`` (``g = A (theta - alpha(theta)) + c``,
per-sample constants from ``cpu_terms`` / ``grid_terms``), one image row at a time instead of a dozen
passes over the whole chunk: a row of rays is built in short buffers that stay in the L1 cache. The SIE and
EPL terms use the SIMD-friendly ``simd_math`` functions, so the row loops are vectorised; a radial subhalo
(NFW, TNFW) is looked up in a table indexed by the float32 bit pattern of ``(R / Rs)^2``
(``cpu_terms.radial_table``); SIS is closed-form. ``render_blocks_cpu`` then samples the source bilinearly
along the row (``grid_sample``'s convention, zero outside) and adds it into its pixel row at once;
``source_grid_coordinates_cpu`` writes the coordinates out instead (for ``grid_sample`` and for tests).

Lens lists: see ``cpu_terms.supports`` (otherwise the callers use the torch path). Each sample's row loops
depend only on that sample, and the polynomial functions give the same bits in the vector body and the
scalar remainder of a loop: a sample does not depend on the batch it is rendered in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from lensml.jit import inline, kernel
from lensml.numerics.simd_math import F32, atan_f32, atanh_f32, exp_f32, f32_bits, log_f32
from lensml.sim.backends.cpu_terms import TABLE_SHIFT, RayTerms, column, ray_terms
from lensml.sim.profiles import PROFILES
from lensml.sim.profiles.multipole import kernel_row as multipole_row

# The kernels read the per-sample tables by column *name* (``cpu_terms.column``; frozen as constants).
# macro section: the frame of the major axis, C (g -= C (u, v)) and q
_XQ0, _XQ_X, _XQ_Y = column("SIE", "xq0"), column("SIE", "xq_x"), column("SIE", "xq_y")
_YR0, _YR_X, _YR_Y = column("SIE", "yr0"), column("SIE", "yr_x"), column("SIE", "yr_y")
_C00, _C01, _C10, _C11, _Q = (column("SIE", n) for n in ("c00", "c01", "c10", "c11", "q"))
# the SIE's own columns, and its flags (1; 2 where its series is used)
_SIE_QQSS, _SIE_S, _SIE_Q2S, _SIE_KQ, _SIE_K = (
    column("SIE", n) for n in ("qqss", "s", "q2s", "k_over_q", "k")
)
_SIE_FLAG = PROFILES["SIE"].kernel.flag
# the EPL's own columns and flag
_EPL_F, _EPL_T, _EPL_TERMS, _EPL_AMP = (column("EPL", n) for n in ("f", "t", "n_terms", "amp"))
_EPL_FLAG = PROFILES["EPL"].kernel.flag
# sub section (radial profiles): centre, 1 / Rs^2, table row, N (g -= h N (dx, dy)); flags
_S_CX, _S_CY, _S_INV_RS2, _S_ROW = (
    column("NFW", n) for n in ("center_x", "center_y", "inv_rs2", "table_row")
)
_S_N00, _S_N01, _S_N10, _S_N11 = (column("NFW", n) for n in ("n00", "n01", "n10", "n11"))
_SIS_FLAG = PROFILES["SIS"].kernel.flag
# extra section: each entry's flag picks its row function
_MULTIPOLE_FLAG = PROFILES["MULTIPOLE"].kernel.flag


@inline
def _epl_row(
    b: int,
    xq_r: float,
    yr_r: float,
    c2: float,
    c5: float,
    m00: float,
    m01: float,
    m10: float,
    m11: float,
    x32: np.ndarray,
    macro: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    work: np.ndarray,
) -> None:
    """g -= C alpha' for lenstronomy's EPL (``profiles.epl.alpha_epl``), alpha' in the frame of the major
    axis: 2 b / (1 + q) (b / R)^(t - 1) Omega(phi), R e^{i phi} = q x' + i y'; a SIMD loop per series term."""
    n = x32.shape[0]
    f, t = macro[b, _EPL_F], macro[b, _EPL_T]
    n_terms = int(macro[b, _EPL_TERMS])
    amp = F32(macro[b, _EPL_AMP])
    power = F32(1.0 - t)
    om_re, om_im, sum_re, sum_im = work[0], work[1], work[2], work[3]
    e2_re, e2_im, r_pow = work[4], work[5], work[6]
    for j in range(n):
        zx = xq_r + c2 * x32[j]
        zy = yr_r + c5 * x32[j]
        r = math.sqrt(zx * zx + zy * zy)
        r_safe = r if r > F32(0.0) else F32(1.0)
        cp, sp = zx / r_safe, zy / r_safe  # e^{i phi}; (0, 0) at the centre -> alpha = 0 there
        om_re[j], om_im[j] = cp, sp
        sum_re[j], sum_im[j] = cp, sp
        e2_re[j], e2_im[j] = cp * cp - sp * sp, F32(2.0) * cp * sp
        r_pow[j] = exp_f32(log_f32(r_safe) * power)
    for k in range(1, n_terms):  # Omega_k = -f (2k - 2 + t) / (2k + 2 - t) e^{2 i phi} Omega_{k-1}
        fac = F32(-f * (2 * k - 2 + t) / (2 * k + 2 - t))
        for j in range(n):
            re = fac * (om_re[j] * e2_re[j] - om_im[j] * e2_im[j])
            im = fac * (om_re[j] * e2_im[j] + om_im[j] * e2_re[j])
            om_re[j], om_im[j] = re, im
            sum_re[j] = sum_re[j] + re
            sum_im[j] = sum_im[j] + im
    for j in range(n):
        a = amp * r_pow[j]
        ux, uy = a * sum_re[j], a * sum_im[j]
        gx[j] = gx[j] - (m00 * ux + m01 * uy)
        gy[j] = gy[j] - (m10 * ux + m11 * uy)


@inline
def _row(
    b: int,
    y: float,
    x32: np.ndarray,
    lin: np.ndarray,
    macro: np.ndarray,
    sub: np.ndarray,
    extra: np.ndarray,
    tables: np.ndarray,
    table_lo: int,
    gx: np.ndarray,
    gy: np.ndarray,
    work: np.ndarray,
) -> None:
    """(gx, gy) of the rays (x32[j], y) of sample ``b``: the image row at y (arcsec); see ``_rays_kernel``.

    ``work`` (7, n) float32 is scratch for the EPL series.
    """
    n = x32.shape[0]
    rx = F32(lin[b, 0] + lin[b, 2] * y)
    ry = F32(lin[b, 3] + lin[b, 5] * y)
    l1, l4 = F32(lin[b, 1]), F32(lin[b, 4])
    for j in range(n):
        gx[j] = rx + l1 * x32[j]
        gy[j] = ry + l4 * x32[j]
    flag = macro[b, 0]
    if flag != 0:
        c2, c5 = F32(macro[b, _XQ_X]), F32(macro[b, _YR_X])
        qqss, s, q2s = F32(macro[b, _SIE_QQSS]), F32(macro[b, _SIE_S]), F32(macro[b, _SIE_Q2S])
        kq, k = F32(macro[b, _SIE_KQ]), F32(macro[b, _SIE_K])
        m00, m01 = F32(macro[b, _C00]), F32(macro[b, _C01])
        m10, m11 = F32(macro[b, _C10]), F32(macro[b, _C11])
        xq_r = F32(macro[b, _XQ0] + macro[b, _XQ_Y] * y)
        yr_r = F32(macro[b, _YR0] + macro[b, _YR_Y] * y)
        if flag == _EPL_FLAG:  # EPL: Tessore & Metcalf series of the angular function, then (b / R)^(t - 1)
            _epl_row(b, xq_r, yr_r, c2, c5, m00, m01, m10, m11, x32, macro, gx, gy, work)
        elif flag == _SIE_FLAG:
            for j in range(n):
                xq = xq_r + c2 * x32[j]
                yr = yr_r + c5 * x32[j]
                psi = math.sqrt(qqss + xq * xq + yr * yr)
                u = atan_f32(kq * xq / (psi + s))
                v = atanh_f32(k * yr / (psi + q2s))
                gx[j] = gx[j] - (m00 * u + m01 * v)
                gy[j] = gy[j] - (m10 * u + m11 * v)
        else:  # nearly circular: atan(k z) / k and atanh(k z) / k by their series
            inv_q = F32(1.0 / macro[b, _Q])
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
    for e in range(extra.shape[1]):  # additive terms (multipoles), in the order of the lens list
        if extra[b, e, 0] == _MULTIPOLE_FLAG:
            multipole_row(extra[b, e], y, x32, gx, gy)
    kind = sub[b, 0]
    if kind != 0:
        sx, sy, inv_rs2 = F32(sub[b, _S_CX]), F32(sub[b, _S_CY]), F32(sub[b, _S_INV_RS2])
        n00, n01 = F32(sub[b, _S_N00]), F32(sub[b, _S_N01])
        n10, n11 = F32(sub[b, _S_N10]), F32(sub[b, _S_N11])
        dy = F32(y) - sy
        dy2 = dy * dy
        if kind == _SIS_FLAG:  # SIS: alpha = theta_E (dx, dy) / r, 0 at r = 0 (theta_E is in N)
            for j in range(n):
                dx = x32[j] - sx
                r2 = dx * dx + dy2
                h = F32(1.0) / math.sqrt(r2) if r2 > F32(0.0) else F32(0.0)
                gx[j] = gx[j] - h * (n00 * dx + n01 * dy)
                gy[j] = gy[j] - h * (n10 * dx + n11 * dy)
        else:  # NFW / TNFW: alpha = (alpha_Rs / Rs) h(R / Rs) (dx, dy) (alpha_Rs / Rs is in N)
            row = int(sub[b, _S_ROW])
            bits_lo = np.int32(table_lo << TABLE_SHIFT)
            bits_hi = np.int32((table_lo + tables.shape[2] - 1) << TABLE_SHIFT)
            for j in range(n):
                dx = x32[j] - sx
                bits = f32_bits((dx * dx + dy2) * inv_rs2)
                bits = min(max(bits, bits_lo), bits_hi)
                t = (bits >> TABLE_SHIFT) - table_lo
                w = F32(bits & 0x7FFF) * F32(1.0 / 32768.0)
                h = tables[row, 0, t] + w * tables[row, 1, t]
                gx[j] = gx[j] - h * (n00 * dx + n01 * dy)
                gy[j] = gy[j] - h * (n10 * dx + n11 * dy)


@inline
def _row_buffers(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The float32 ray coordinates along a row, the row's (gx, gy) buffers and the EPL scratch."""
    n = coords.shape[0]
    x32 = np.empty(n, np.float32)
    for j in range(n):
        x32[j] = F32(coords[j])
    return x32, np.empty(n, np.float32), np.empty(n, np.float32), np.empty((7, n), np.float32)


@kernel
def _rays_kernel(
    coords: np.ndarray,
    lin: np.ndarray,
    macro: np.ndarray,
    sub: np.ndarray,
    extra: np.ndarray,
    tables: np.ndarray,
    table_lo: int,
    out: np.ndarray,
) -> None:
    """out[b, i, j] = (g_x, g_y) of the ray at (coords[j], coords[i]) (arcsec) for every sample b.

    Per-sample float64 columns, read by name (``cpu_terms.column``): ``lin`` (B, 6): g_x = l0 + l1 x + l2 y,
    g_y = l3 + l4 x + l5 y (shear folded in). ``macro``: flag (0 none, 1 SIE, 2 its series, 3 EPL), the frame
    ``sie.MACRO_COLUMNS`` (xq = xq0 + xq_x x + xq_y y, yr likewise), the profile's own columns
    (``sie.SIE_COLUMNS``, ``epl.EPL_COLUMNS``), C (2 x 2, row-major; g -= C (u, v)), q. ``sub``: flag (0 none,
    1 SIS, 2 tabulated), ``sis.SUB_COLUMNS``: centre x, y, 1 / Rs^2, table row, N (2 x 2; g -= h N (dx, dy)
    with h = 1 / R for SIS, the table's h(R / Rs) otherwise). ``extra`` (B, E, W): up to E additive terms
    per sample, each a flag (0 none, 1 MULTIPOLE) and its profile's columns (``multipole.EXTRA_COLUMNS``).
    ``tables`` (T, 2, K): ``radial_table`` rows
    whose first node has index ``table_lo``.
    """
    n = coords.shape[0]
    x32, gx, gy, work = _row_buffers(coords)
    for b in range(lin.shape[0]):
        for i in range(n):
            _row(b, coords[i], x32, lin, macro, sub, extra, tables, table_lo, gx, gy, work)
            for j in range(n):
                out[b, i, j, 0] = gx[j]
                out[b, i, j, 1] = gy[j]


@kernel
def _render_kernel(
    coords: np.ndarray,
    lin: np.ndarray,
    macro: np.ndarray,
    sub: np.ndarray,
    extra: np.ndarray,
    tables: np.ndarray,
    table_lo: int,
    source: np.ndarray,
    factor: int,
    out: np.ndarray,
) -> None:
    """Block averages (B, 2, n / factor, n / factor) of the bilinearly sampled f and f v along the rays.

    ``source`` (B, M + 3, M + 3, 2): f and f v interleaved, with a zero border (``pack_sources``); the
    coordinates are those of ``_rays_kernel`` (``grid_sample``'s convention: pixel edges at -1 and 1, zero
    outside). Each row of rays is sampled as soon as it is traced and summed into its block row.
    """
    n = coords.shape[0]
    m = source.shape[1] - 3
    stride = 2 * (m + 3)  # floats per padded source row
    half = F32(0.5 * m)
    offset = F32(0.5 * m + 0.5)  # grid unit -> padded pixel index: g m / 2 + (m - 1) / 2 + 1
    top = F32(m + 1)
    x32, gx, gy, work = _row_buffers(coords)
    nb = n // factor
    acc_f = np.zeros(nb, np.float32)
    acc_v = np.zeros(nb, np.float32)
    inv = F32(1.0 / (factor * factor))
    for b in range(lin.shape[0]):
        src = source[b].reshape(-1)
        for i in range(n):
            _row(b, coords[i], x32, lin, macro, sub, extra, tables, table_lo, gx, gy, work)
            for j in range(n):  # bilinear sample: clamped into the zero border, outside reads 0
                ix = min(max(gx[j] * half + offset, F32(0.0)), top)
                iy = min(max(gy[j] * half + offset, F32(0.0)), top)
                x0, y0 = np.int32(ix), np.int32(iy)
                wx, wy = ix - F32(x0), iy - F32(y0)
                k = y0 * stride + 2 * x0  # (f, f v) at (y0, x0), (y0, x0 + 1); the next row at k + stride
                f0 = src[k] + wx * (src[k + 2] - src[k])
                v0 = src[k + 1] + wx * (src[k + 3] - src[k + 1])
                k += stride
                f1 = src[k] + wx * (src[k + 2] - src[k])
                v1 = src[k + 1] + wx * (src[k + 3] - src[k + 1])
                gx[j] = f0 + wy * (f1 - f0)  # the row buffers now hold the sampled f and f v
                gy[j] = v0 + wy * (v1 - v0)
            for jb in range(nb):
                for d in range(factor):
                    acc_f[jb] += gx[jb * factor + d]
                    acc_v[jb] += gy[jb * factor + d]
            if (i + 1) % factor == 0:
                ib = i // factor
                for jb in range(nb):
                    out[b, 0, ib, jb] = acc_f[jb] * inv
                    out[b, 1, ib, jb] = acc_v[jb] * inv
                    acc_f[jb] = F32(0.0)
                    acc_v[jb] = F32(0.0)


@kernel
def _pack_kernel(flux: np.ndarray, velocity: np.ndarray, out: np.ndarray) -> None:
    m = flux.shape[1]
    for b in range(flux.shape[0]):
        for i in range(m + 3):
            for j in range(m + 3):
                out[b, i, j, 0] = F32(0.0)
                out[b, i, j, 1] = F32(0.0)
        for i in range(m):
            row = out[b, i + 1]
            for j in range(m):
                f = F32(flux[b, i, j])
                row[j + 1, 0] = f
                row[j + 1, 1] = f * F32(velocity[b, i, j])


def pack_sources(flux: np.ndarray, velocity_kms: np.ndarray) -> np.ndarray:
    """Source grids (B, M, M) -> (B, M + 3, M + 3, 2) float32: f and f v interleaved, a zero border of 1
    pixel before and 2 after (so that a clamped bilinear read never leaves the array)."""
    flux = np.ascontiguousarray(flux)
    velocity_kms = np.ascontiguousarray(velocity_kms)
    b, m = flux.shape[0], flux.shape[-1]
    out = np.empty((b, m + 3, m + 3, 2), np.float32)
    _pack_kernel(flux, velocity_kms, out)
    return out


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
    terms = ray_terms(lens_model_list, kwargs_lens, affine, offset)
    return None if terms is None else coordinates_from_terms(coords, terms)


def coordinates_from_terms(coords: np.ndarray, terms: RayTerms) -> np.ndarray:
    """``source_grid_coordinates_cpu`` from terms already packed by ``ray_terms``."""
    coords = np.asarray(coords, dtype=np.float64)
    out = np.empty((terms.lin.shape[0], coords.size, coords.size, 2), np.float32)
    _rays_kernel(coords, *terms.args(), out)
    return out


def render_blocks_cpu(
    coords: np.ndarray, terms: RayTerms, source: np.ndarray, factor: int
) -> np.ndarray:
    """Block-averaged (B, 2, n / factor, n / factor) f and f v seen along the rays of the grid ``coords``.

    ``source`` from ``pack_sources``; ``terms`` from ``ray_terms``. Equals ``grid_sample`` of the source at
    ``source_grid_coordinates_cpu`` followed by the block average, to float32 rounding.
    """
    coords = np.asarray(coords, dtype=np.float64)
    n = coords.size
    if n % factor:
        raise ValueError(f"render_blocks_cpu: {n} rays per side is not a multiple of supersample={factor}.")
    out = np.empty((terms.lin.shape[0], 2, n // factor, n // factor), np.float32)
    _render_kernel(coords, *terms.args(), np.ascontiguousarray(source, np.float32), factor, out)
    return out

"""Compiled CPU kernel (numba): the analytic disk (+ bulge + clumps) on its square source grid, float32.

The same model and conventions as ``lensml.sources.disk`` (``disk_maps_on_grid``), evaluated row by row with
the SIMD-friendly ``simd_math`` exp / log: one pass per grid row instead of a dozen passes over the batch.
The grid of sample b is centred on its disk: pixel (i, j) sits at offsets ``(half_b u_j, half_b u_i)``
arcsec from the disk centre, ``u`` the pixel-centre coordinates in [-1, 1] (``grid_sample`` convention).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from lensml.jit import kernel
from lensml.numerics.simd_math import F32, exp_f32, log_f32
from lensml.sources.disk import _clump_params

#: Columns of the per-sample table given to the kernel (float64).
_COLUMNS = (
    "position_angle_deg",
    "inclination_deg",
    "scale_radius_arcsec",
    "v_max_kms",
    "r_turn_arcsec",
    "v_sys_kms",
    "bulge_amp",
    "bulge_r_eff_arcsec",
    "bulge_sersic_n",
)


@kernel
def _disk_kernel(
    u: np.ndarray, half: np.ndarray, prm: np.ndarray, clumps: np.ndarray, flux: np.ndarray, vel: np.ndarray
) -> None:
    """flux, vel (B, M, M) of the disks ``prm`` (B, 9; ``_COLUMNS``), clumps (B, K, 5) (``_clump_params``)."""
    m = u.shape[0]
    n_clumps = clumps.shape[1]
    ax = np.empty(m, np.float32)
    f_row = np.empty(m, np.float32)
    fv_row = np.empty(m, np.float32)
    g_col = np.empty((max(n_clumps, 1), m), np.float32)
    g_row = np.empty((max(n_clumps, 1), m), np.float32)
    for b in range(prm.shape[0]):
        pa, inc = prm[b, 0] * (math.pi / 180.0), prm[b, 1] * (math.pi / 180.0)
        cos_pa, sin_pa = F32(math.cos(pa)), F32(math.sin(pa))
        cos_pa_i, sin_pa_i = F32(math.cos(pa) / math.cos(inc)), F32(math.sin(pa) / math.cos(inc))
        inv_rs = F32(-1.0 / prm[b, 2])
        inv_rt = F32(-1.0 / prm[b, 4])
        v_fac = F32(prm[b, 3] * math.sin(inc) / prm[b, 4])
        v_sys = F32(prm[b, 5])
        amp = F32(prm[b, 6])
        inv_r_eff = F32(1.0 / prm[b, 7])
        inv_n = F32(1.0 / prm[b, 8])
        b_n = F32(1.9992 * prm[b, 8] - 0.3271)  # Capaccioli (1989), 0.5 < n < 10
        for j in range(m):
            ax[j] = F32(half[b] * u[j])
        for k in range(n_clumps):  # separable Gaussian knots: a row and a column factor, each capped at e^-40
            xk, yk = F32(clumps[b, k, 0]), F32(clumps[b, k, 1])
            ak, inv_2s2 = F32(clumps[b, k, 2]), F32(clumps[b, k, 3])
            for j in range(m):
                d = ax[j] - xk
                g_col[k, j] = exp_f32(-min(d * d * inv_2s2, F32(40.0)))
                d = ax[j] - yk
                g_row[k, j] = exp_f32(-min(d * d * inv_2s2, F32(40.0))) * ak
        for i in range(m):
            dy = ax[i]
            for j in range(m):
                dx = ax[j]
                x_d = dx * cos_pa + dy * sin_pa  # disk plane: X along the major axis, Y = y_minor / cos(i)
                y_d = dy * cos_pa_i - dx * sin_pa_i
                r = math.sqrt(x_d * x_d + y_d * y_d)
                f_d = exp_f32(max(r * inv_rs, F32(-80.0)))
                # V_c(R) cos(theta) = v_max X (1 - e^-t) / (t r_turn), t = R / r_turn
                t = min(max(r * inv_rt, F32(-80.0)), F32(-1e-30))
                v_d = (exp_f32(t) - F32(1.0)) / t * x_d * v_fac + v_sys
                f_row[j] = f_d
                fv_row[j] = f_d * v_d
            if amp != F32(0.0):  # circular Sersic bulge at systemic velocity
                for j in range(m):
                    dx = ax[j]
                    rr = math.sqrt(dx * dx + dy * dy) * inv_r_eff
                    rn = exp_f32(log_f32(rr) * inv_n) if rr > F32(0.0) else F32(0.0)
                    f_b = amp * exp_f32(-min(b_n * (rn - F32(1.0)), F32(80.0)))
                    f_row[j] = f_row[j] + f_b
                    fv_row[j] = fv_row[j] + f_b * v_sys
            for k in range(n_clumps):
                gr = g_row[k, i]
                grv = gr * F32(clumps[b, k, 4])
                for j in range(m):
                    f_row[j] = f_row[j] + gr * g_col[k, j]
                    fv_row[j] = fv_row[j] + grv * g_col[k, j]
            for j in range(m):
                flux[b, i, j] = f_row[j]
                vel[b, i, j] = fv_row[j] / f_row[j]


def disk_grids_f32(prm: Mapping[str, np.ndarray], half: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Flux and velocity (km/s) (B, m, m) float32 of the disks ``prm`` (``disk.DISK_PARAMS`` and
    ``CLUMP_PARAMS``, numpy) on grids of half-size ``half`` (B,) arcsec centred on each disk."""
    table = np.stack([np.asarray(prm[k], dtype=np.float64) for k in _COLUMNS], -1)
    has_clumps = "clump_amp" in prm and np.asarray(prm["clump_amp"]).shape[-1] > 0
    clumps = (
        np.ascontiguousarray(_clump_params({k: np.asarray(v, dtype=np.float64) for k, v in prm.items()}))
        if has_clumps
        else np.zeros((table.shape[0], 0, 5))
    )
    u = (np.arange(m) + 0.5) / m * 2.0 - 1.0  # pixel centres, align_corners=False
    flux = np.empty((table.shape[0], m, m), np.float32)
    vel = np.empty_like(flux)
    _disk_kernel(u, np.asarray(half, dtype=np.float64), table, clumps, flux, vel)
    return flux, vel

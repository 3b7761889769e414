"""The noise of a batch of images in one compiled pass (numba): exact Poisson counts and Gaussian normals.

Each pixel draws its own numbers from Philox4x32-10 (``lensml.numerics.philox``) keyed by its sample's 64-bit
noise seed, so a sample's noise depends on that seed and its own (peak S/N, line width) only (not on the
batch, the order or the machine):

- counter ``(pixel, 0, 0, 0)``: words 0, 1 give two standard normals by the Box-Muller transform (the
  Gaussian background, ``r cos``, and the velocity noise, ``r sin``, scaled by the pixel's line-centroid
  error, ``lensml.sim.velocity_noise``); words 2, 3 give the first (U, V) pair of the Poisson draw (U alone
  for inversion).
- counter ``(pixel, 1, r, 0)``, r = 0, 1, ...: two more (U, V) pairs each, for rejected PTRS attempts.

Poisson counts are exact: for a mean ``lam >= 10`` Hörmann's transformed rejection with squeeze (PTRS,
Hörmann 1993, "The transformed rejection method for generating Poisson random variables", the algorithm of
numpy's ``Generator.poisson``), attempts in the order above; below 10, inversion of the cumulative
distribution in float64. Words become uniforms as ``(w + 0.5) 2^-32``, never 0 or 1. ``poisson_reference``
draws one count the plain sequential way; the kernel gets the same counts (tested) with SIMD loops: all
pixels take their first attempt together, then the pixels that need more are copied into short contiguous
lists (inversion; the full PTRS test; further attempts, round after round) that are again processed in
SIMD loops.
"""

from __future__ import annotations

import math

import numpy as np

from lensml.jit import inline, kernel
from lensml.numerics.philox import UNIT, philox4x32
from lensml.numerics.simd_math import F32, exp_f64, lgamma_f64, log_f32, log_f64, sincos_2pi_f32

_U64 = np.uint64
_LOW32 = _U64(0xFFFFFFFF)
#: Means below this use inversion; PTRS needs lam >= 10.
PTRS_MIN_MEAN = 10.0
#: Inversion steps taken in the SIMD loop (a scalar loop finishes the rare longer searches).
_INVERSION_SIMD_STEPS = 16
_INVERSION_MAX_K = 100_000


@inline
def _ptrs_shape(lam: float) -> tuple[float, float, float, float]:
    """PTRS constants (b, a, 1 / alpha, v_r) of mean ``lam`` (Hörmann 1993, table 1)."""
    b = 0.931 + 2.53 * math.sqrt(lam)
    a = -0.059 + 0.02483 * b
    return b, a, 1.1239 + 1.1328 / (b - 3.4), 0.9277 - 3.6224 / (b - 2.0)


@inline
def _ptrs_attempt(lam: float, w_u: np.uint64, w_v: np.uint64) -> tuple[float, bool, bool]:
    """One PTRS attempt of mean ``lam`` (>= 10) from words (w_u, w_v): (candidate k, quick accept, accept).

    Branch-free (it vectorises); ln and ln Gamma from ``simd_math`` (errors ~1e-15).
    """
    b, a, inv_alpha, v_r = _ptrs_shape(lam)
    u = (float(w_u) + 0.5) * UNIT - 0.5
    v = (float(w_v) + 0.5) * UNIT
    us = 0.5 - abs(u)
    k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
    quick = (us >= 0.07) & (v <= v_r)
    k_safe = max(k, 0.0)
    lhs = log_f64(v) + log_f64(inv_alpha) - log_f64(a / (us * us) + b)
    rhs = -lam + k_safe * log_f64(lam) - lgamma_f64(k_safe + 1.0)
    full = (k >= 0.0) & ~((us < 0.013) & (v > us)) & (lhs <= rhs)
    return k, quick, quick | full


@inline
def _inversion(lam: float, u: float, steps: int) -> float:
    """Smallest k <= ``steps`` with u <= P(X <= k) for X ~ Poisson(lam), or -1 if k > ``steps``."""
    p = exp_f64(-lam)
    cdf = p
    k = 0.0
    for j in range(1, steps + 1):  # a fixed trip count (SIMD); k counts the partial sums below u
        k += 1.0 if u > cdf else 0.0
        p = p * (lam * (1.0 / j))
        cdf += p
    return k if u <= cdf else -1.0


@inline
def _inversion_search(lam: float, u: float) -> float:
    """Smallest k with u <= P(X <= k) for X ~ Poisson(lam): the same partial sums, stopping when found."""
    p = exp_f64(-lam)
    cdf = p
    k = 0
    while u > cdf and k < _INVERSION_MAX_K:
        k += 1
        p = p * (lam * (1.0 / k))
        cdf += p
    return float(k)


@kernel
def poisson_reference(lam: float, key: np.uint64, pixel: int) -> float:
    """One exact Poisson count of mean ``lam``, drawn the plain sequential way (for tests and reference).

    ``key`` is the sample's noise seed and ``pixel`` the flat pixel index; the numbers follow the module
    docstring, so the count equals the one ``noise_kernel`` draws for that pixel.
    """
    k0, k1 = key & _LOW32, key >> _U64(32)
    w = philox4x32(_U64(pixel), _U64(0), _U64(0), _U64(0), k0, k1)
    if lam < PTRS_MIN_MEAN:
        return _inversion_search(lam, (float(w[2]) + 0.5) * UNIT)
    k, _, ok = _ptrs_attempt(lam, w[2], w[3])
    r = _U64(0)
    while not ok:
        w = philox4x32(_U64(pixel), _U64(1), r, _U64(0), k0, k1)
        k, _, ok = _ptrs_attempt(lam, w[0], w[1])
        if not ok:
            k, _, ok = _ptrs_attempt(lam, w[2], w[3])
        r += _U64(1)
    return k


@inline
def _poisson_rounds(
    lam: np.ndarray,
    counts: np.ndarray,
    words: np.ndarray,
    n: int,
    k0: np.uint64,
    k1: np.uint64,
    work: np.ndarray,
    work_w: np.ndarray,
) -> None:
    """counts[p] for every pixel p whose first attempt left it at -1 (``poisson_reference``'s numbers).

    ``work`` (6, n) float64 and ``work_w`` (2, n) uint64 are scratch: two compacted lists (small means for
    inversion; PTRS), each of pixel index, mean, words and result.
    """
    s_idx, s_lam, s_k, a_idx, a_lam, a_k = work[0], work[1], work[2], work[3], work[4], work[5]
    s_w, a_w = work_w[0], work_w[1]
    m_s = 0
    m_a = 0
    for p in range(n):  # branch-free compaction: always write, advance where the pixel belongs
        need = counts[p] < 0.0
        small = lam[p] < PTRS_MIN_MEAN
        s_idx[m_s], s_lam[m_s], s_w[m_s] = p, lam[p], words[p]
        a_idx[m_a], a_lam[m_a], a_w[m_a] = p, lam[p], words[p]
        m_s += 1 if need & small else 0
        m_a += 1 if need & ~small else 0
    for t in range(m_s):  # inversion, the first steps (SIMD)
        s_k[t] = _inversion(s_lam[t], (float(s_w[t] & _LOW32) + 0.5) * UNIT, _INVERSION_SIMD_STEPS)
    for t in range(m_s):
        if s_k[t] < 0.0:  # a longer search
            s_k[t] = _inversion_search(s_lam[t], (float(s_w[t] & _LOW32) + 0.5) * UNIT)
        counts[int(s_idx[t])] = s_k[t]
    for t in range(m_a):  # PTRS: the full test of the first attempt (SIMD)
        k, _, ok = _ptrs_attempt(a_lam[t], a_w[t] & _LOW32, a_w[t] >> _U64(32))
        a_k[t] = k if ok else -1.0
    r = _U64(0)
    m = m_a
    while m > 0:  # further attempts, two per round, on the pixels still rejected
        left = 0
        for t in range(m):
            if a_k[t] >= 0.0:
                counts[int(a_idx[t])] = a_k[t]
            else:
                a_idx[left], a_lam[left] = a_idx[t], a_lam[t]
                left += 1
        m = left
        for t in range(m):
            w = philox4x32(_U64(a_idx[t]), _U64(1), r, _U64(0), k0, k1)
            k, _, ok = _ptrs_attempt(a_lam[t], w[0], w[1])
            k2, _, ok2 = _ptrs_attempt(a_lam[t], w[2], w[3])
            a_k[t] = k if ok else (k2 if ok2 else -1.0)
        r += _U64(1)


@kernel
def noise_kernel(
    flux: np.ndarray,
    velocity: np.ndarray,
    mask: np.ndarray,
    keys: np.ndarray,
    peak_snr: np.ndarray,
    sigma_line_kms: np.ndarray,
    background_sigma_frac: float,
    kappa: float,
    sigma_v_floor_kms: float,
    sigma_v_max_kms: float,
    mask_frac_of_peak: float,
    mask_from_observed: bool,
    out_flux: np.ndarray,
    out_velocity: np.ndarray,
) -> None:
    """Noisy flux and velocity (B, H, W) float32 of noiseless ``flux``, ``velocity``, ``mask``.

    ``keys`` (B,) uint64 are the samples' noise seeds, ``peak_snr`` and ``sigma_line_kms`` (B,) float64 their
    peak S/N (``<= 0`` switches the Poisson noise off) and line dispersion. The velocity error of a pixel is
    ``lensml.sim.velocity_noise.velocity_sigma_kms`` of its noiseless flux (float32 arithmetic); the velocity
    is kept where the final mask holds (the observed mask of the noisy flux, or ``mask``) and 0 elsewhere.
    Images without positive flux are copied with velocity 0.
    """
    n_b, h, w = flux.shape
    n = h * w
    lam = np.empty(n, np.float64)
    counts = np.empty(n, np.float64)
    words = np.empty(n, np.uint64)
    work = np.empty((6, n), np.float64)
    work_w = np.empty((2, n), np.uint64)
    for i in range(n_b):
        f = flux[i].reshape(n)
        v_in = velocity[i].reshape(n)
        f_out = out_flux[i].reshape(n)
        v_out = out_velocity[i].reshape(n)
        peak = f[0]
        for p in range(n):
            peak = max(peak, f[p])
        if not peak > F32(0.0):
            for p in range(n):
                f_out[p] = f[p]
                v_out[p] = F32(0.0)
            continue
        k0, k1 = keys[i] & _LOW32, keys[i] >> _U64(32)
        snr = peak_snr[i]
        scale = snr * snr / float(peak) if snr > 0.0 else 0.0
        var_per_flux = F32(float(peak) / (snr * snr)) if snr > 0.0 else F32(0.0)  # Poisson variance / f
        bg = F32(background_sigma_frac) * peak
        bg2 = bg * bg
        a = F32(sigma_line_kms[i])
        bg2k = F32(kappa * kappa) * bg2  # kappa weighs the background part; photon noise has kappa 1
        floor2 = F32(sigma_v_floor_kms * sigma_v_floor_kms)
        sv_max = F32(sigma_v_max_kms)
        for p in range(n):  # SIMD: the normals, the velocity noise, the first Poisson attempt
            w0, w1, w2, w3 = philox4x32(_U64(p), _U64(0), _U64(0), _U64(0), k0, k1)
            u1 = F32((float(w0) + 0.5) * UNIT)
            u2 = F32((float(w1) + 0.5) * UNIT)
            r = F32(math.sqrt(F32(-2.0) * log_f32(u1)))
            s, c = sincos_2pi_f32(u2)
            f_out[p] = r * c * bg
            fp = max(f[p], F32(0.0))
            t = a * F32(math.sqrt(fp * var_per_flux + bg2k)) / (fp if fp > F32(0.0) else F32(1.0))
            sigma = min(F32(math.sqrt(t * t + floor2)), sv_max) if fp > F32(0.0) else sv_max
            v_out[p] = v_in[p] + r * s * sigma
            mean = float(fp) * scale
            k, quick, _ = _ptrs_attempt(max(mean, PTRS_MIN_MEAN), w2, w3)  # full test: later, if needed
            lam[p] = mean
            counts[p] = k if quick & (mean >= PTRS_MIN_MEAN) else -1.0
            words[p] = w2 | (w3 << _U64(32))
        if scale > 0.0:
            _poisson_rounds(lam, counts, words, n, k0, k1, work, work_w)
            for p in range(n):
                f_out[p] = F32(counts[p] / scale) + f_out[p]
        else:
            for p in range(n):
                f_out[p] = f[p] + f_out[p]
        obs_peak = f_out[0]
        for p in range(n):
            obs_peak = max(obs_peak, f_out[p])
        threshold = F32(mask_frac_of_peak) * obs_peak
        m_in = mask[i].reshape(n)
        for p in range(n):
            keep = f_out[p] > threshold if mask_from_observed else m_in[p]
            v_out[p] = v_out[p] if keep else F32(0.0)

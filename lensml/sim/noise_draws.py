"""The noise of a batch of images in one compiled pass (numba): exact Poisson counts and Gaussian normals.

Each pixel draws its own numbers from Philox4x32-10 (``lensml.sim.philox``) keyed by its sample's 64-bit
noise seed, so a sample's noise depends on that seed only (not on the batch, the order or the machine):

- counter ``(pixel, 0, 0, 0)``: words 0, 1 give two standard normals by the Box-Muller transform (the
  Gaussian background and the velocity noise); words 2, 3 give the first (U, V) pair of the Poisson draw.
- counter ``(pixel, 1, r, 0)``, r = 0, 1, ...: two more (U, V) pairs each, for the rare rejected draws.

Poisson counts are exact: for a mean ``lam >= 10`` Hörmann's transformed rejection with squeeze (PTRS,
Hörmann 1993, "The transformed rejection method for generating Poisson random variables", the algorithm of
numpy's ``Generator.poisson``); below 10, inversion of the cumulative distribution in float64. The first PTRS
attempt (accepted ~90 % of the time) runs in a SIMD loop over the image; rejections and small means finish
in a scalar loop. Words become uniforms as ``(w + 0.5) 2^-32``, never 0 or 1.
"""

from __future__ import annotations

import math

import numpy as np

from lensml.jit import inline, kernel
from lensml.sim.backends.simd_math import F32, exp_f64, lgamma_f64, log_f32, log_f64, sincos_2pi_f32
from lensml.sim.philox import UNIT, philox4x32

_U64 = np.uint64
#: Means below this use inversion; PTRS needs lam >= 10.
PTRS_MIN_MEAN = 10.0
_INVERSION_MAX_K = 10_000
#: Inversion steps taken in the SIMD pass (the scalar pass finishes the rare longer searches).
_INVERSION_SIMD_STEPS = 16


@inline
def _ptrs_shape(lam: float) -> tuple[float, float, float, float]:
    """PTRS constants (b, a, 1 / alpha, v_r) of mean ``lam`` (Hörmann 1993, table 1)."""
    b = 0.931 + 2.53 * math.sqrt(lam)
    a = -0.059 + 0.02483 * b
    return b, a, 1.1239 + 1.1328 / (b - 3.4), 0.9277 - 3.6224 / (b - 2.0)


@inline
def _ptrs_candidate(
    lam: float, b: float, a: float, w_u: np.uint64, w_v: np.uint64
) -> tuple[float, float, float]:
    """The candidate count k of one PTRS attempt from words (w_u, w_v), with us = 0.5 - |U| and V."""
    u = (float(w_u) + 0.5) * UNIT - 0.5
    v = (float(w_v) + 0.5) * UNIT
    us = 0.5 - abs(u)
    return math.floor((2.0 * a / us + b) * u + lam + 0.43), us, v


@inline
def _ptrs_accepts(lam: float, k: float, us: float, v: float, a: float, b: float, inv_alpha: float) -> bool:
    """The full PTRS test of candidate k (after the quick acceptance ``us >= 0.07 and v <= v_r`` failed).

    Branch-free (it vectorises); ``lam >= 10``. ln Gamma and ln by ``simd_math`` (errors ~1e-15).
    """
    k_safe = max(k, 0.0)
    lhs = log_f64(v) + log_f64(inv_alpha) - log_f64(a / (us * us) + b)
    rhs = -lam + k_safe * log_f64(lam) - lgamma_f64(k_safe + 1.0)
    return (k >= 0.0) & ~((us < 0.013) & (v > us)) & (lhs <= rhs)


@kernel
def _poisson_rest(lam: float, u: float, pixel: int, k0: np.uint64, k1: np.uint64) -> float:
    """The Poisson draws the SIMD pass left: inversion from uniform ``u`` (lam < 10), or PTRS attempts from
    stream 1 (lam >= 10, its first attempt was rejected)."""
    if lam < PTRS_MIN_MEAN:  # smallest k with P(X <= k) >= u; the same arithmetic as the SIMD pass
        p = exp_f64(-lam)
        cdf = p
        k = 0
        while u > cdf and k < _INVERSION_MAX_K:
            k += 1
            p = p * (lam * (1.0 / k))
            cdf += p
        return float(k)
    b, a, inv_alpha, v_r = _ptrs_shape(lam)
    r = _U64(0)
    while True:
        w = philox4x32(_U64(pixel), _U64(1), r, _U64(0), k0, k1)
        k, us, v = _ptrs_candidate(lam, b, a, w[0], w[1])
        if (us >= 0.07 and v <= v_r) or _ptrs_accepts(lam, k, us, v, a, b, inv_alpha):
            return k
        k, us, v = _ptrs_candidate(lam, b, a, w[2], w[3])
        if (us >= 0.07 and v <= v_r) or _ptrs_accepts(lam, k, us, v, a, b, inv_alpha):
            return k
        r += _U64(1)


@kernel
def noise_kernel(
    flux: np.ndarray,
    velocity: np.ndarray,
    mask: np.ndarray,
    keys: np.ndarray,
    peak_snr: float,
    background_sigma_frac: float,
    sigma_v_kms: float,
    sigma_v_max_kms: float,
    mask_frac_of_peak: float,
    mask_from_observed: bool,
    out_flux: np.ndarray,
    out_velocity: np.ndarray,
) -> None:
    """Noisy flux and velocity (B, H, W) float32 of noiseless ``flux``, ``velocity``, ``mask``.

    ``keys`` (B,) uint64 are the samples' noise seeds; ``peak_snr <= 0`` switches the Poisson noise off. See
    ``lensml.sim.instrument.add_noise`` for the noise model. Images without positive flux are copied with
    velocity 0.
    """
    n_b, h, w = flux.shape
    n = h * w
    counts = np.empty(n, np.float64)
    uniform = np.empty(n, np.float64)
    mask32 = _U64(0xFFFFFFFF)
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
        k0, k1 = keys[i] & mask32, keys[i] >> _U64(32)
        scale = peak_snr * peak_snr / float(peak) if peak_snr > 0.0 else 0.0
        bg = F32(background_sigma_frac) * peak
        floor = peak * F32(1e-6)
        sv, sv_max = F32(sigma_v_kms), F32(sigma_v_max_kms)
        for p in range(n):  # SIMD: normals, the first PTRS attempt (accepted ~90 %), the velocity noise
            w0, w1, w2, w3 = philox4x32(_U64(p), _U64(0), _U64(0), _U64(0), k0, k1)
            u1 = F32((float(w0) + 0.5) * UNIT)
            u2 = F32((float(w1) + 0.5) * UNIT)
            r = F32(math.sqrt(F32(-2.0) * log_f32(u1)))
            s, c = sincos_2pi_f32(u2)
            lam = float(max(f[p], F32(0.0))) * scale
            lam_c = max(lam, PTRS_MIN_MEAN)  # PTRS constants are computed for every lane
            b, a, inv_alpha, v_r = _ptrs_shape(lam_c)
            k, us, v = _ptrs_candidate(lam_c, b, a, w2, w3)
            quick = (us >= 0.07) & (v <= v_r)
            accept = (lam >= PTRS_MIN_MEAN) & (quick | _ptrs_accepts(lam_c, k, us, v, a, b, inv_alpha))
            # lam < 10: inversion, k = #{j : u > P(X <= j)}, the first steps here
            u = (float(w2) + 0.5) * UNIT
            lam_s = min(lam, PTRS_MIN_MEAN)
            prob = exp_f64(-lam_s)
            cdf = prob
            k_inv = 0.0
            for j in range(1, _INVERSION_SIMD_STEPS + 1):
                k_inv += 1.0 if u > cdf else 0.0
                prob = prob * (lam_s * (1.0 / j))
                cdf += prob
            small_done = (lam < PTRS_MIN_MEAN) & (u <= cdf)
            counts[p] = k if accept else (k_inv if small_done else -1.0)
            uniform[p] = u
            f_out[p] = r * c * bg
            sigma = min(F32(math.sqrt(peak / max(f[p], floor))) * sv, sv_max)
            v_out[p] = v_in[p] + r * s * sigma
        if scale > 0.0:
            for p in range(n):  # scalar: rejected attempts and small means (inversion)
                if counts[p] < 0.0:
                    lam = float(max(f[p], F32(0.0))) * scale
                    counts[p] = _poisson_rest(lam, uniform[p], p, k0, k1)
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

"""The IFU cube's voxel noise in one compiled pass: exact Poisson counts and a Gaussian background per voxel.

The model is ``lensml.sim.cube``'s (``voxel_sigma``): the flux noise relative to the noiseless flux map's
peak (Poisson with the sample's ``peak_snr`` there, background ``background_sigma_frac * peak``) split over
the channels, the background per voxel ``background_voxel_sigma``. The numbers are those of the maps' noise
kernel (``lensml.sim.noise_draws``: Philox4x32-10, Box-Muller, exact Poisson by inversion / PTRS) with the
voxel's flat index ``(channel, row, column)`` as the pixel counter, under a key derived from the sample's
64-bit noise seed: words 0, 1 of Philox at counter ``(0, 0, 0, CUBE_NOISE_TAG)`` (a counter the maps never
use). So a sample's cube noise is a pure function of its seed (not of the batch, the order or the machine),
and the flux and velocity maps' noise is untouched: the maps are the same with the cube on or off. The
cube's noise and the maps' noise are separate realisations of one model.
"""

from __future__ import annotations

import math

import numpy as np

from lensml.jit import kernel
from lensml.numerics.philox import UNIT, philox4x32
from lensml.numerics.simd_math import F32, log_f32, sincos_2pi_f32
from lensml.sim.cube import background_voxel_sigma
from lensml.sim.instrument import Instrument, Noise, noise_keys, per_sample_peak_snr
from lensml.sim.noise_draws import PTRS_MIN_MEAN, _poisson_rounds, _ptrs_attempt

#: the counter word that derives the cube's key from a sample's noise seed
CUBE_NOISE_TAG = 0xC0BE
_U64 = np.uint64
_LOW32 = _U64(0xFFFFFFFF)


@kernel
def cube_noise_key(seed: np.uint64) -> tuple[np.uint64, np.uint64]:
    """The Philox key (two 32-bit words) of a sample's cube noise, from its 64-bit noise seed."""
    w = philox4x32(_U64(0), _U64(0), _U64(0), _U64(CUBE_NOISE_TAG), seed & _LOW32, seed >> _U64(32))
    return w[0], w[1]


@kernel
def _cube_noise_kernel(
    cube: np.ndarray,
    peak: np.ndarray,
    peak_snr: np.ndarray,
    background: np.ndarray,
    keys: np.ndarray,
    out: np.ndarray,
) -> None:
    """cube (B, n) float32 voxels -> out (B, n): Poisson counts (mean ``max(c, 0) peak_snr^2 / peak``) over
    the same scale, plus ``background[b]`` times a normal; ``peak_snr <= 0``: no Poisson part; an image
    whose ``peak`` is not positive is copied."""
    n_b, n = cube.shape
    lam = np.empty(n, np.float64)
    counts = np.empty(n, np.float64)
    words = np.empty(n, np.uint64)
    work = np.empty((6, n), np.float64)
    work_w = np.empty((2, n), np.uint64)
    for i in range(n_b):
        c, o = cube[i], out[i]
        if not peak[i] > 0.0:
            for p in range(n):
                o[p] = c[p]
            continue
        k0, k1 = cube_noise_key(keys[i])
        snr = peak_snr[i]
        scale = snr * snr / peak[i] if snr > 0.0 else 0.0
        bg = F32(background[i])
        for p in range(n):  # SIMD: the normals and the first Poisson attempt (as noise_draws.noise_kernel)
            w0, w1, w2, w3 = philox4x32(_U64(p), _U64(0), _U64(0), _U64(0), k0, k1)
            u1 = F32((float(w0) + 0.5) * UNIT)
            u2 = F32((float(w1) + 0.5) * UNIT)
            r = F32(math.sqrt(F32(-2.0) * log_f32(u1)))
            _, cs = sincos_2pi_f32(u2)
            o[p] = r * cs * bg
            mean = float(max(c[p], F32(0.0))) * scale
            k, quick, _ = _ptrs_attempt(max(mean, PTRS_MIN_MEAN), w2, w3)
            lam[p] = mean
            counts[p] = k if quick & (mean >= PTRS_MIN_MEAN) else -1.0
            words[p] = w2 | (w3 << _U64(32))
        if scale > 0.0:
            _poisson_rounds(lam, counts, words, n, k0, k1, work, work_w)
            for p in range(n):
                o[p] = F32(counts[p] / scale) + o[p]
        else:
            for p in range(n):
                o[p] = c[p] + o[p]


def draw_cube_noise(
    cube: np.ndarray,
    peak: np.ndarray,
    peak_snr: np.ndarray,
    background_sigma_frac: float,
    dv_kms: float,
    sigma_line_kms: np.ndarray,
    keys: np.ndarray,
) -> np.ndarray:
    """Noisy cube (B, N_v, H, W) float32 of a noiseless ``cube``; ``peak`` (B,): the noiseless flux maps'
    peaks, ``peak_snr`` (B,) (inf or <= 0: no Poisson part), ``sigma_line_kms`` (B,), ``keys`` (B,) uint64
    noise seeds. Images whose peak is not positive are returned unchanged."""
    b = cube.shape[0]
    flat = np.ascontiguousarray(cube, dtype=np.float32).reshape(b, -1)
    snr = np.asarray(peak_snr, dtype=np.float64)
    bg = background_voxel_sigma(np.asarray(peak, np.float64), background_sigma_frac, dv_kms, sigma_line_kms)
    out = np.empty_like(flat)
    _cube_noise_kernel(
        flat,
        np.ascontiguousarray(peak, dtype=np.float64),
        np.where(np.isfinite(snr), snr, 0.0),  # the kernel's "off": <= 0
        np.broadcast_to(bg, (b,)).astype(np.float64),
        noise_keys(keys),
        out,
    )
    return out.reshape(cube.shape)


def add_cube_noise(
    cube: np.ndarray, flux: np.ndarray, noise: Noise, instrument: Instrument, draws: object
) -> np.ndarray:
    """The simulator's noisy cube: ``draw_cube_noise`` with the noiseless ``flux`` maps' peaks and the
    drawn peak S/N, line dispersions and noise seeds of ``draws`` (a ``DrawBatch``)."""
    b = cube.shape[0]
    edges = instrument.channel_edges_kms
    return draw_cube_noise(
        cube,
        np.asarray(flux, dtype=np.float32).reshape(b, -1).max(axis=1).astype(np.float64),
        per_sample_peak_snr(noise, draws.peak_snr, b),
        noise.background_sigma_frac,
        float(edges[1] - edges[0]),
        np.broadcast_to(np.asarray(draws.sigma_line_kms, dtype=np.float64), (b,)),
        noise_keys(draws.noise_key),
    )

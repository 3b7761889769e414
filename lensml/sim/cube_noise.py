"""The IFU cube's voxel noise: Poisson counts and a Gaussian background per voxel (``lensml.sim.cube``).

Per sample, from its 64-bit noise seed (``DrawBatch.noise_key``) and the tag ``CUBE_NOISE_TAG``: a numpy
``Generator(Philox)`` seeded by ``SeedSequence([seed low 32 bits, seed high 32 bits, CUBE_NOISE_TAG])``, so a
sample's cube noise is a pure function of its seed (not of the batch): Poisson counts of the voxels with
positive flux in C order, then float32 standard normals of all voxels. The flux and velocity maps'
noise (``lensml.sim.noise_draws``, counters keyed by the same seed) is untouched: the maps are the same
with the cube on or off. The cube's noise and the maps' noise are separate realisations of one model: the
flux noise relative to the noiseless flux map's peak (Poisson with ``peak_snr`` there, background
``background_sigma_frac * peak``), split over the channels (``lensml.sim.cube.voxel_sigma``).
"""

from __future__ import annotations

import numpy as np

from lensml.sim.cube import background_voxel_sigma
from lensml.sim.instrument import Instrument, Noise, noise_keys, per_sample_peak_snr

#: extra entropy word of the cube noise streams
CUBE_NOISE_TAG = 0xC0BE


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
    peaks, ``peak_snr`` (B,) (inf: no Poisson part), ``sigma_line_kms`` (B,), ``keys`` (B,) uint64 seeds.
    Images whose peak is not positive are returned unchanged."""
    out = np.empty(cube.shape, np.float32)
    bg = background_voxel_sigma(peak, background_sigma_frac, dv_kms, sigma_line_kms)
    for b in range(cube.shape[0]):  # one generator per sample (its own seed); each draw is vectorised
        c = np.asarray(cube[b], dtype=np.float64)
        pk, snr = float(peak[b]), float(peak_snr[b])
        if not pk > 0:
            out[b] = cube[b]
            continue
        key = int(keys[b])
        rng = np.random.Generator(
            np.random.Philox(np.random.SeedSequence([key & 0xFFFFFFFF, key >> 32, CUBE_NOISE_TAG]))
        )
        signal = c.copy()
        if np.isfinite(snr) and snr > 0:
            scale = snr * snr / pk  # counts per flux unit
            lit = c > 0  # Poisson(0) = 0: draw only where the line reaches (most voxels are dark)
            signal[lit] = rng.poisson(c[lit] * scale) / scale
            signal[~lit] = 0.0
        noise = rng.standard_normal(c.shape, dtype=np.float32)
        out[b] = (signal + noise * np.float32(bg[b])).astype(np.float32)
    return out


def add_cube_noise(
    cube: np.ndarray, flux: np.ndarray, noise: Noise, instrument: Instrument, draws: object
) -> np.ndarray:
    """The simulator's noisy cube: ``draw_cube_noise`` with the noiseless ``flux`` maps' peaks and the
    drawn peak S/N, line dispersions and noise seeds of ``draws`` (a ``DrawBatch``)."""
    b = cube.shape[0]
    edges = instrument.channel_edges_kms
    return draw_cube_noise(
        cube,
        np.asarray(flux, dtype=np.float64).reshape(b, -1).max(axis=1),
        per_sample_peak_snr(noise, draws.peak_snr, b),
        noise.background_sigma_frac,
        float(edges[1] - edges[0]),
        np.broadcast_to(np.asarray(draws.sigma_line_kms, dtype=np.float64), (b,)),
        noise_keys(draws.noise_key),
    )

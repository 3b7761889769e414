"""Compiled CPU kernel (numba): pixel-averaged f and f v -> observed flux, velocity and mask, float32.

The same steps as ``torch_backend.observe_torch`` after its block average (``cpu_rays.render_blocks_cpu``
averages the sub-pixels as it samples them): true convolution with a separable PSF keeping the fully
overlapped part, crop, mask where the flux exceeds ``mask_frac_of_peak`` times its peak,
``v = K*(f v) / K*(f)`` wherever ``K*(f) > 0`` and 0 elsewhere (the mask is applied after the noise,
``lensml.sim.instrument.add_noise``); one image at a time with its rows in the L1 cache.
Non-separable PSF kernels and ``velocity_grid`` use the torch path.
"""

from __future__ import annotations

import numpy as np

from lensml.jit import kernel
from lensml.numerics.simd_math import F32
from lensml.sim.instrument import Instrument


def separable_taps(psf_kernel: np.ndarray | None) -> np.ndarray | None:
    """(2, K) column and row taps with ``psf_kernel = outer(col, row)``, or None if it is not rank 1.

    No PSF gives the single tap 1.
    """
    if psf_kernel is None:
        return np.ones((2, 1))
    u, sv, vt = np.linalg.svd(psf_kernel)
    if not (sv[0] > 0 and sv[1:].sum() <= 1e-12 * sv[0]):
        return None
    return np.stack([u[:, 0] * np.sqrt(sv[0]), vt[0] * np.sqrt(sv[0])])


def supports(instrument: Instrument) -> bool:
    """Whether ``observe_cpu`` handles this instrument (separable or no PSF, no velocity degradation)."""
    return instrument.velocity_grid is None and separable_taps(instrument.psf_kernel) is not None


@kernel
def _observe_kernel(
    block: np.ndarray,
    taps: np.ndarray,
    crop: int,
    mask_frac: float,
    flux: np.ndarray,
    velocity: np.ndarray,
    mask: np.ndarray,
) -> None:
    """block (B, 2, H, W) pixel-averaged f and f v -> flux, velocity, mask (B, N, N); module docstring."""
    n_b, _, h, w = block.shape
    n_taps = taps.shape[1]
    hv, wv = h - n_taps + 1, w - n_taps + 1  # after the 'valid' convolution
    n = flux.shape[1]
    col = np.empty(n_taps, np.float32)
    row = np.empty(n_taps, np.float32)
    for t in range(n_taps):  # true convolution: reversed taps
        col[t] = F32(taps[0, n_taps - 1 - t])
        row[t] = F32(taps[1, n_taps - 1 - t])
    rows_done = np.empty((2, hv, w), np.float32)
    out = np.empty((2, hv, wv), np.float32)
    for b in range(n_b):
        for c in range(2):
            img = block[b, c]
            for i in range(hv):  # PSF along the columns (image rows)
                for j in range(w):
                    rows_done[c, i, j] = img[i, j] * col[0]
                for t in range(1, n_taps):
                    for j in range(w):
                        rows_done[c, i, j] = rows_done[c, i, j] + img[i + t, j] * col[t]
            for i in range(hv):  # PSF along the rows
                for j in range(wv):
                    out[c, i, j] = rows_done[c, i, j] * row[0]
                for t in range(1, n_taps):
                    for j in range(wv):
                        out[c, i, j] = out[c, i, j] + rows_done[c, i, j + t] * row[t]
        peak = out[0, crop, crop]
        for i in range(n):
            for j in range(n):
                peak = max(peak, out[0, crop + i, crop + j])
        threshold = F32(mask_frac) * peak
        for i in range(n):
            for j in range(n):
                f = out[0, crop + i, crop + j]
                keep = (f > threshold) & (f > F32(0.0))
                flux[b, i, j] = f
                mask[b, i, j] = keep
                velocity[b, i, j] = out[1, crop + i, crop + j] / f if f > F32(0.0) else F32(0.0)


def observe_cpu(
    block: np.ndarray, instrument: Instrument, mask_frac_of_peak: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-averaged (B, 2, H, W) float32 f and f v (with the PSF margin, i.e. ``block_average`` of the
    supersampled image) -> flux, velocity, mask (B, N, N)."""
    taps = separable_taps(instrument.psf_kernel)
    if taps is None or instrument.velocity_grid is not None:
        raise ValueError("observe_cpu: needs a separable PSF and velocity_grid=None; use observe_torch.")
    b, n = block.shape[0], instrument.n_pix
    flux = np.empty((b, n, n), np.float32)
    velocity = np.empty_like(flux)
    mask = np.empty((b, n, n), bool)
    crop = instrument.margin_pix - instrument.psf_half
    block = np.ascontiguousarray(block, dtype=np.float32)
    _observe_kernel(block, taps, crop, float(mask_frac_of_peak), flux, velocity, mask)
    return flux, velocity, mask

"""numpy reference operations on supersampled images (the lenstronomy backend uses these; the torch backend
mirrors them): block average, PSF convolution ('valid' part), bilinear resampling and the observed maps.
Conventions: ``lensml.sim.render`` (module docstring).
"""

from __future__ import annotations

import numpy as np

from lensml.sim.instrument import Instrument


def block_average(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping ``factor x factor`` blocks of the last two axes."""
    if factor == 1:
        return image
    *lead, h, w = image.shape
    return image.reshape(*lead, h // factor, factor, w // factor, factor).mean(axis=(-3, -1))


def convolve_valid(image: np.ndarray, kernel: np.ndarray | None) -> np.ndarray:
    """True 2-D convolution keeping only the fully overlapped ('valid') part."""
    if kernel is None:
        return image
    from scipy.signal import fftconvolve

    return fftconvolve(image, kernel, mode="valid")


def upsample_bilinear(image: np.ndarray, n_out: int) -> np.ndarray:
    """Bilinear resampling of (n_in, n_in) to (n_out, n_out), half-pixel convention, edges clamped.

    Same as ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``.
    """
    a = _interp_matrix(image.shape[-1], n_out)
    return a @ image @ a.T


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = src - i0
    a = np.zeros((n_out, n_in))
    a[np.arange(n_out), i0] += 1.0 - w1
    a[np.arange(n_out), i1] += w1
    return a


def _crop(image: np.ndarray, n: int) -> np.ndarray:
    return image[..., n:-n, n:-n] if n else image


def observe_numpy(
    f_sub: np.ndarray, fv_sub: np.ndarray, instrument: Instrument, mask_frac_of_peak: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Supersampled f and f*v (with the PSF margin) of one image -> observed (flux, velocity, mask).

    The velocity is the flux-weighted mean wherever the flux is positive (0 elsewhere), inside and outside
    the mask: the simulator sets it to 0 outside the final mask after adding the noise.
    """
    crop = instrument.margin_pix - instrument.psf_half
    f = _crop(convolve_valid(block_average(f_sub, instrument.supersample), instrument.psf_kernel), crop)
    fv = _crop(
        convolve_valid(block_average(fv_sub, instrument.supersample), instrument.psf_kernel), crop
    )
    if instrument.velocity_grid:
        factor = instrument.n_pix // instrument.velocity_grid
        f_v = upsample_bilinear(block_average(f, factor), instrument.n_pix)
        fv = upsample_bilinear(block_average(fv, factor), instrument.n_pix)
    else:
        f_v = f
    peak = f.max()
    mask = (f > mask_frac_of_peak * peak) & (f > 0)
    velocity = np.where((f > 0) & (f_v > 0), fv / np.where(f_v > 0, f_v, 1.0), 0.0)
    return f, velocity, mask

"""Instrument and noise: PSF kernel, image grid settings, flux and velocity noise, validity mask.

Conventions:

- Angles in **arcsec**; the PSF is given by its FWHM (arcsec) or as an explicit odd-sized kernel (``.npy``) at
  the detector pixel scale. A Gaussian kernel is sampled at pixel-centre offsets and normalised to sum 1.
- Flux is in arbitrary surface-brightness units; noise is set relative to the **noiseless peak** of each
  image: Poisson noise with ``peak_snr`` at the peak (counts = flux / peak * peak_snr^2) plus a Gaussian
  background of ``background_sigma_frac * peak``.
- Velocity noise is Gaussian, in km/s: ``sigma_v = sigma_v_kms * sqrt(peak / flux)`` capped at
  ``sigma_v_max_kms``, i.e. line-fit errors grow as 1/sqrt(flux) towards faint pixels. It is added inside the
  validity mask only; outside the mask the velocity is 0.
- The validity mask is where the flux exceeds ``mask_frac_of_peak`` times the image's peak. With
  ``mask_from="observed"`` (default; an IFU pipeline masks spaxels by their measured line flux) it is
  computed on the noisy observed flux and its maximum; with ``mask_from="noiseless"`` on the noiseless
  flux. The noiseless mask is an idealisation that leaks: the velocity channel is 0 outside the mask, so
  it would carry a noise-free isophote of the lensed image (docs/science.md, the mask-leak study).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lensml.errors import ConfigError, DataError

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class Instrument:
    """Image grid and PSF. ``psf_kernel`` is a normalised odd-sized 2-D array at the detector pixel scale."""

    n_pix: int = 64
    pixel_scale_arcsec: float = 0.05
    supersample: int = 2
    psf_kernel: np.ndarray | None = None
    velocity_grid: int | None = (
        None  # render the velocity on a coarser grid (e.g. 32), then resample to n_pix
    )

    @property
    def psf_half(self) -> int:
        """Half-width of the PSF kernel in pixels (the image is rendered with this margin, then cropped)."""
        return 0 if self.psf_kernel is None else self.psf_kernel.shape[0] // 2

    @property
    def margin_pix(self) -> int:
        """Pixels ray-traced beyond the field on each side: the PSF half-width."""
        return self.psf_half

    @property
    def field_arcsec(self) -> float:
        return self.n_pix * self.pixel_scale_arcsec


@dataclass(frozen=True)
class Noise:
    """Noise settings (see the module docstring). ``peak_snr=None`` switches the flux noise off."""

    peak_snr: float | None = 30.0
    background_sigma_frac: float = 0.02
    sigma_v_kms: float = 10.0
    sigma_v_max_kms: float = 100.0
    mask_frac_of_peak: float = 0.05
    mask_from: str = "observed"


MASK_FROM = ("observed", "noiseless")


def observed_mask(flux: np.ndarray, mask_frac_of_peak: float) -> np.ndarray:
    """Validity mask (B, N, N) of a batch of flux maps: ``flux > mask_frac_of_peak * max(flux)`` per image.

    Computed on the float32 maps, so the mask returned by the simulator is the one applied to the velocity.
    """
    f = np.asarray(flux, dtype=np.float32)
    peak = f.reshape(f.shape[0], -1).max(axis=1)
    return f > np.float32(mask_frac_of_peak) * peak[:, None, None]


def gaussian_psf_kernel(
    fwhm_arcsec: float, pixel_scale_arcsec: float, truncate_sigma: float = 4.0
) -> np.ndarray:
    """Gaussian PSF sampled at pixel-centre offsets, odd size ``2 ceil(truncate_sigma sigma) + 1``, sum 1."""
    sigma_px = fwhm_arcsec / FWHM_PER_SIGMA / pixel_scale_arcsec
    half = max(1, int(math.ceil(truncate_sigma * sigma_px)))
    r = np.arange(-half, half + 1, dtype=float)
    g = np.exp(-0.5 * (r / sigma_px) ** 2)
    kernel = np.outer(g, g)
    return kernel / kernel.sum()


def load_psf_kernel(path: str | Path, key: str = "instrument.psf_kernel_path") -> np.ndarray:
    """Load an explicit PSF kernel (``.npy``, 2-D, odd square, positive sum) and normalise it to sum 1."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{key}: PSF kernel file {path} not found; give an existing .npy file or set {key}=null."
        )
    kernel = np.asarray(np.load(path), dtype=float)
    return check_psf_kernel(kernel, key)


def check_psf_kernel(kernel: np.ndarray, key: str = "instrument.psf_kernel_path") -> np.ndarray:
    """Validate an explicit PSF kernel and normalise it to sum 1."""
    kernel = np.asarray(kernel, dtype=float)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ConfigError(
            f"{key}: PSF kernel must be a square 2-D array of odd size, got shape {kernel.shape}."
        )
    if not np.all(np.isfinite(kernel)) or kernel.sum() <= 0:
        raise ConfigError(f"{key}: PSF kernel must be finite with a positive sum.")
    return kernel / kernel.sum()


def image_coordinates(
    n_pix: int, pixel_scale_arcsec: float, supersample: int, margin_pix: int = 0
) -> np.ndarray:
    """1-D sub-pixel centre coordinates (arcsec) of the supersampled image grid, centred on 0.

    The grid spans ``n_pix + 2 margin_pix`` detector pixels; detector pixel j (of the cropped n_pix image) has
    centre ``(j - (n_pix - 1) / 2) * pixel_scale_arcsec``. Rows follow y and columns follow x (origin lower).
    """
    n_total = (n_pix + 2 * margin_pix) * supersample
    step = pixel_scale_arcsec / supersample
    return (np.arange(n_total, dtype=float) + 0.5) * step - 0.5 * (
        n_pix + 2 * margin_pix
    ) * pixel_scale_arcsec


def noise_keys(keys: Sequence[int | np.random.Generator] | np.ndarray) -> np.ndarray:
    """Per-sample 64-bit noise seeds: given as integers, or drawn once from each ``numpy`` generator."""
    if isinstance(keys, np.ndarray) and keys.dtype == np.uint64:
        return np.ascontiguousarray(keys)
    return np.array(
        [
            k.integers(0, 2**64, dtype=np.uint64) if isinstance(k, np.random.Generator) else int(k) % 2**64
            for k in keys
        ],
        dtype=np.uint64,
    )


def add_noise(
    flux: np.ndarray,
    velocity_kms: np.ndarray,
    mask: np.ndarray,
    noise: Noise,
    keys: Sequence[int | np.random.Generator] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy (flux, velocity) of a batch (B, N, N) of noiseless maps; sample b uses ``keys[b]`` only.

    ``keys`` are the samples' 64-bit noise seeds (``Simulator.draw`` gives them; a ``numpy`` generator in
    their place gives one draw). Every pixel's numbers come from the counter-based generator keyed by the
    seed (``lensml.sim.noise_draws``: exact Poisson counts, Box-Muller normals for the background and the
    velocity), in one compiled pass over the batch. ``mask`` is the noiseless mask; with
    ``noise.mask_from="observed"`` the velocity is zeroed outside ``observed_mask(noisy flux)`` instead
    (call ``observed_mask`` on the returned flux to get that mask). Images with no positive flux are
    returned unchanged, with velocity 0.
    """
    from lensml.sim.noise_draws import noise_kernel

    f = np.ascontiguousarray(flux, dtype=np.float32)  # float32 throughout: the maps are float32
    v = np.ascontiguousarray(velocity_kms, dtype=np.float32)
    m = np.ascontiguousarray(mask, dtype=bool)
    seeds = noise_keys(keys)
    if seeds.shape != (f.shape[0],):
        raise ValueError(f"add_noise: {f.shape[0]} images but {seeds.size} noise seeds; give one per image.")
    out_f, out_v = np.empty_like(f), np.empty_like(f)
    noise_kernel(
        f,
        v,
        m,
        seeds,
        float(noise.peak_snr) if noise.peak_snr is not None else 0.0,
        float(noise.background_sigma_frac),
        float(noise.sigma_v_kms),
        float(noise.sigma_v_max_kms),
        float(noise.mask_frac_of_peak),
        noise.mask_from == "observed",
        out_f,
        out_v,
    )
    return out_f, out_v

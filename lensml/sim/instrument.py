"""Instrument and noise: PSF kernel, image grid, spectral set-up, flux and velocity noise, validity mask.

Conventions:

- Angles in **arcsec**; the PSF is given by its FWHM (arcsec) or as an explicit odd-sized kernel (``.npy``) at
  the detector pixel scale. A Gaussian kernel is sampled at pixel-centre offsets and normalised to sum 1.
- IFU cube (``n_velocity_channels`` > 0; channels from ``channel_width_kms`` or ``velocity_range_kms``):
  formulas and noise model in ``lensml.sim.cube``.
- Spectral set-up: the emission line traced (``line``, rest wavelength in Angstrom, vacuum), the
  instrument's wavelength coverage (um) and resolving power R = lambda / FWHM. The line observed at
  ``rest * (1 + z_source)`` must fall in the coverage (``check_line_coverage``); R sets the instrumental
  line width ``c / (2.3548 R)``.
- Flux is in arbitrary surface-brightness units; noise is set relative to the **noiseless peak** of each
  image: Poisson noise with ``peak_snr`` at the peak (counts = flux / peak * peak_snr^2) plus a Gaussian
  background of ``background_sigma_frac * peak``. ``peak_snr`` is a prior (number or named distribution,
  ``lensml.numerics.priors``) drawn per sample by the simulator.
- Velocity noise is Gaussian, in km/s, the centroid error of the emission line in each pixel
  (``lensml.sim.velocity_noise``): ``sigma_v = sqrt((kappa sigma_line / SNR_pix)^2 + floor^2)``, capped at
  ``sigma_v_max_kms``, with ``SNR_pix`` the pixel's line S/N under the flux noise above.
- The renderers give the flux-weighted velocity wherever the convolved flux is positive; the noise is added
  to every pixel and only then is the velocity set to 0 outside the final validity mask. That mask is where
  the flux exceeds ``mask_frac_of_peak`` times the image's peak: with ``mask_from="observed"`` (default; an
  IFU pipeline masks spaxels by their measured line flux) on the noisy observed flux and its maximum, and
  where the observed flux also exceeds ``mask_min_snr`` times its estimated noise sigma (an S/N cut, as
  IFU pipelines apply: without it, a 5 % cut is only ~1 background sigma at low S/N and lets pure-noise
  spaxels in); with ``mask_from="noiseless"`` on the noiseless flux. The noiseless mask is an
  idealisation that leaks: the velocity channel is 0 outside it, so it would carry a noise-free isophote of
  the lensed image (docs/science.md, the mask-leak study).
- The error maps a pipeline would report (``reported_sigmas``) are computed from observed quantities only
  (noisy flux, its peak, the drawn peak S/N and line width), never from the noiseless image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lensml.errors import ConfigError, DataError
from lensml.sim.cube import channel_edges_kms
from lensml.sim.velocity_noise import (
    FWHM_PER_SIGMA,
    KAPPA_BACKGROUND_LIMITED,
)

#: Rest-frame vacuum wavelengths (Angstrom) of the emission lines a preset may name (``instrument.line``);
#: [OII] is the 3727.09 / 3729.88 doublet's mean (blended at R < ~4000).
EMISSION_LINES_ANGSTROM: dict[str, float] = {
    "H-alpha": 6564.61,
    "H-beta": 4862.68,
    "[OIII]5008": 5008.24,
    "[OII]3728": 3728.48,
    "Ly-alpha": 1215.67,
}


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
    name: str = "default"
    line: str = "H-alpha"
    line_rest_angstrom: float = EMISSION_LINES_ANGSTROM["H-alpha"]
    wavelength_range_um: tuple[float, float] = (1.0, 2.4)
    resolving_power: float = 3800.0
    #: > 0: also render the IFU cube of that many velocity channels (``lensml.sim.cube``); 0 = off
    n_velocity_channels: int = 0
    channel_width_kms: float | None = None  # channel width; None = 2 velocity_range_kms / n_velocity_channels
    velocity_range_kms: float | None = 600.0  # channels tile [-range, range] (km/s) when no width is given

    @property
    def channel_edges_kms(self) -> np.ndarray | None:
        """(n_velocity_channels + 1,) channel edges (km/s) of the cube, or None when it is off."""
        if not self.n_velocity_channels:
            return None
        return channel_edges_kms(self.n_velocity_channels, self.channel_width_kms, self.velocity_range_kms)

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


def check_line_coverage(instrument: Instrument, z_source: float) -> float:
    """Observed wavelength (um) of the instrument's line at ``z_source``; ``ConfigError`` if not covered."""
    lo, hi = instrument.wavelength_range_um
    obs_um = instrument.line_rest_angstrom * 1e-4 * (1.0 + z_source)
    if not lo <= obs_um <= hi:
        rest_um = instrument.line_rest_angstrom * 1e-4
        z_lo, z_hi = max(lo / rest_um - 1.0, 0.0), hi / rest_um - 1.0
        fits = [k for k, w in EMISSION_LINES_ANGSTROM.items() if lo <= w * 1e-4 * (1.0 + z_source) <= hi]
        other = (
            "instrument=jwst_nirspec, 0.97-5.27 um"
            if instrument.name != "jwst_nirspec"
            else "a lower lens.z_source"
        )
        raise ConfigError(
            f"lens.z_source={z_source:g} puts instrument.line={instrument.line!r} "
            f"({instrument.line_rest_angstrom:g} A rest) at {obs_um:.3f} um, outside "
            f"instrument.wavelength_range_um=[{lo:g}, {hi:g}] of instrument.name={instrument.name!r}; "
            f"use {z_lo:.2f} <= lens.z_source <= {z_hi:.2f} for this line, a line the instrument sees at "
            f"this redshift (instrument.line, one of {fits or 'none in the table'}), or an instrument "
            f"that covers it (e.g. {other})."
        )
    return obs_um


@dataclass(frozen=True)
class Noise:
    """Noise settings (see the module docstring).

    ``peak_snr``: a number, None (no Poisson noise) or a named prior drawn per sample by the simulator
    (``add_noise`` then needs the drawn values). ``kappa``, ``sigma_v_floor_kms``, ``sigma_v_max_kms``: the
    velocity-error model of ``lensml.sim.velocity_noise``. ``mask_frac_of_peak``, ``mask_from``,
    ``mask_min_snr``: the validity mask (module docstring, ``final_mask``).
    """

    peak_snr: Any = 30.0
    background_sigma_frac: float = 0.02
    kappa: float = KAPPA_BACKGROUND_LIMITED
    sigma_v_floor_kms: float = 5.0
    sigma_v_max_kms: float = 300.0
    mask_frac_of_peak: float = 0.05
    mask_from: str = "observed"
    mask_min_snr: float = 3.0


MASK_FROM = ("observed", "noiseless")


def observed_mask(
    flux: np.ndarray,
    mask_frac_of_peak: float,
    min_snr: float = 0.0,
    peak_snr: float | np.ndarray | None = None,
    background_sigma_frac: float = 0.0,
) -> np.ndarray:
    """Validity mask (B, N, N) of a batch of observed flux maps, per image: ``flux > mask_frac_of_peak *
    max(flux)`` and, if ``min_snr > 0``, ``flux > min_snr * flux_sigma`` with the flux noise sigma a
    pipeline would estimate from the observed flux, its maximum, ``peak_snr`` (scalar or (B,); None or inf:
    no Poisson term) and ``background_sigma_frac`` (``lensml.sim.velocity_noise.flux_sigma``).

    The fraction test runs on the float32 maps (as the noise kernel's), so the mask returned by the simulator
    is the one applied to the velocity (``final_mask``).
    """
    f = np.asarray(flux, dtype=np.float32)
    peak = f.reshape(f.shape[0], -1).max(axis=1)
    mask = f > np.float32(mask_frac_of_peak) * peak[:, None, None]
    if min_snr > 0:  # f > min_snr * flux_sigma(f), as f > 0 and f^2 > min_snr^2 (f a + b), in float32
        b = f.shape[0]
        snr = np.broadcast_to(np.asarray(np.inf if peak_snr is None else peak_snr, dtype=np.float64), (b,))
        pk = np.maximum(peak, 0.0).astype(np.float64)
        poisson = np.isfinite(snr) & (snr > 0)
        a = np.where(poisson, pk / np.where(poisson, snr, 1.0) ** 2, 0.0).astype(np.float32)[:, None, None]
        c = ((background_sigma_frac * pk) ** 2).astype(np.float32)[:, None, None]
        k2 = np.float32(min_snr * min_snr)
        fp = np.maximum(f, np.float32(0.0))
        mask &= (f > 0) & (f * f > k2 * (fp * a + c))
    return mask


def final_mask(
    flux_obs: np.ndarray, noiseless_mask: np.ndarray, noise: Noise, peak_snr: float | np.ndarray | None
) -> np.ndarray:
    """The mask of a noisy batch: ``observed_mask`` of the observed flux with ``noise.mask_frac_of_peak``
    and ``noise.mask_min_snr`` (``noise.mask_from="observed"``), else the noiseless mask."""
    if noise.mask_from != "observed":
        return np.asarray(noiseless_mask, dtype=bool)
    snr = per_sample_peak_snr(noise, peak_snr, np.asarray(flux_obs).shape[0])
    return observed_mask(
        flux_obs, noise.mask_frac_of_peak, noise.mask_min_snr, snr, noise.background_sigma_frac
    )


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


def per_sample_peak_snr(noise: Noise, peak_snr: float | np.ndarray | None, b: int) -> np.ndarray:
    """(B,) float64 peak S/N: the drawn values, or ``noise.peak_snr`` if it is a number; inf = no Poisson."""
    value = noise.peak_snr if peak_snr is None else peak_snr
    if isinstance(value, dict):
        raise ValueError(
            "add_noise: noise.peak_snr is a prior; pass the drawn values (peak_snr=DrawBatch.peak_snr)."
        )
    value = np.inf if value is None else value
    out = np.broadcast_to(np.asarray(value, dtype=np.float64), (b,)).copy()
    return np.where(out > 0, out, np.inf)


def add_noise(
    flux: np.ndarray,
    velocity_kms: np.ndarray,
    mask: np.ndarray,
    noise: Noise,
    keys: Sequence[int | np.random.Generator] | np.ndarray,
    sigma_line_kms: float | np.ndarray,
    peak_snr: float | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy (flux, velocity) of a batch (B, N, N) of noiseless maps; sample b uses ``keys[b]`` only.

    ``keys`` are the samples' 64-bit noise seeds (``Simulator.draw_batch`` gives them; a ``numpy`` generator
    in their place gives one draw), ``sigma_line_kms`` (scalar or (B,)) the observed line dispersion
    (``velocity_noise.line_sigma_kms``), ``peak_snr`` (scalar or (B,)) the drawn peak S/N (default
    ``noise.peak_snr`` if it is a number). ``velocity_kms`` is the flux-weighted velocity wherever the flux
    is positive. Every pixel's numbers come from the counter-based generator keyed by the seed
    (``lensml.sim.noise_draws``: exact Poisson counts, Box-Muller normals for the background and the
    velocity), in one compiled pass over the batch. The velocity is then set to 0 outside the final mask
    (``final_mask``: of the noisy flux with ``noise.mask_from="observed"``, else ``mask``). Images with no
    positive flux are returned unchanged, with velocity 0.
    """
    from lensml.sim.noise_draws import noise_kernel

    f = np.ascontiguousarray(flux, dtype=np.float32)  # float32 throughout: the maps are float32
    v = np.ascontiguousarray(velocity_kms, dtype=np.float32)
    m = np.ascontiguousarray(mask, dtype=bool)
    seeds = noise_keys(keys)
    b = f.shape[0]
    if seeds.shape != (b,):
        raise ValueError(f"add_noise: {b} images but {seeds.size} noise seeds; give one per image.")
    snr = per_sample_peak_snr(noise, peak_snr, b)
    line = np.broadcast_to(np.asarray(sigma_line_kms, dtype=np.float64), (b,)).copy()
    out_f, out_v = np.empty_like(f), np.empty_like(f)
    noise_kernel(
        f,
        v,
        m,
        seeds,
        np.where(np.isfinite(snr), snr, 0.0),  # the kernel's "off": <= 0
        line,
        float(noise.background_sigma_frac),
        float(noise.kappa),
        float(noise.sigma_v_floor_kms),
        float(noise.sigma_v_max_kms),
        float(noise.mask_frac_of_peak),
        noise.mask_from == "observed",
        out_f,
        out_v,
    )
    if noise.mask_from == "observed" and noise.mask_min_snr > 0:  # the kernel cut by the fraction only
        out_v[~final_mask(out_f, m, noise, snr)] = np.float32(0.0)
    return out_f, out_v


def reported_sigmas(
    flux_obs: np.ndarray,
    noise: Noise,
    sigma_line_kms: float | np.ndarray,
    peak_snr: float | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(sigma_v_kms, flux_sigma) float32 (B, N, N): the error maps a pipeline would report.

    From observed quantities only: the noisy flux and its per-image maximum, the drawn peak S/N and line
    width, ``noise.background_sigma_frac`` (relative to the observed peak). A map computed from the
    noiseless flux would hand the network the noiseless isophote. ``sigma_v_kms`` is the formula's value in
    every pixel (``sigma_v_max_kms`` where the observed flux is <= 0), also outside the mask where the
    velocity is 0; ``flux_sigma`` is 0 where the flux is noiseless. Computed in float32 by a compiled kernel
    (``reported_sigmas_kernel``) with ``lensml.sim.velocity_noise``'s formulas (tested against it).
    """
    from lensml.sim.reported_sigmas_kernel import reported_sigmas_kernel

    f = np.ascontiguousarray(flux_obs, dtype=np.float32)
    b = f.shape[0]
    snr = per_sample_peak_snr(noise, peak_snr, b)
    line = np.broadcast_to(np.asarray(sigma_line_kms, dtype=np.float64), (b,)).copy()
    s_v, s_f = np.empty_like(f), np.empty_like(f)
    reported_sigmas_kernel(
        f, snr, line, float(noise.background_sigma_frac), float(noise.kappa),
        float(noise.sigma_v_floor_kms), float(noise.sigma_v_max_kms), s_v, s_f,
    )
    return s_v, s_f

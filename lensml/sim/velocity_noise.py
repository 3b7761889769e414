"""Per-pixel noise of the two channels: the flux noise sigma and the line-centroid (velocity) error.

Pure numpy, vectorised, the reference the noise kernel (``lensml.sim.noise_draws``) follows and the ideal
observer uses (``lensml.analysis.signal``). Units: flux in the image's arbitrary units, velocities in km/s.

**Flux.** Relative to the image's peak ``peak``: Poisson noise with S/N ``peak_snr`` at the peak (counts =
flux / peak * peak_snr^2) plus a Gaussian background ``background_sigma_frac * peak``::

    flux_sigma = sqrt(max(f, 0) * peak / peak_snr^2 + (background_sigma_frac * peak)^2)

``peak_snr = inf`` (or <= 0, the kernel's convention) switches the Poisson part off. The pixel's line S/N
is ``SNR_pix = f / flux_sigma``: ~ sqrt(f) where photon noise dominates, ~ f for faint, background-limited
pixels.

**Velocity.** The centroid error of a Gaussian emission line of dispersion ``sigma_line`` measured with
line-flux S/N ``SNR_pix``, plus a systematic floor in quadrature, capped at the fit window::

    sigma_v = min( sqrt( (kappa * sigma_line / SNR_pix)^2 + floor^2 ), sigma_v_max )
    (kappa / SNR_pix = sqrt(var_photon + kappa_bg^2 var_background) / f: see kappa below)
    sigma_line = sqrt(sigma0^2 + sigma_instr^2),   sigma_instr = c / (2.3548 R)

- ``kappa``: the Cramer-Rao bound of a Gaussian-line fit. With white (background-limited) noise and
  ``SNR_pix`` the optimal (matched-filter) S/N of the line flux, ``sigma_centroid = sqrt(2) sigma_line /
  SNR``, i.e. ``0.69 sqrt(FWHM * dlambda) / SNR_peak`` in terms of the S/N of the line's peak spectral pixel,
  the form and constant of Landman, Roussel-Dupre & Tanigawa (1982, ApJ 261, 732) and Lenz & Ayres (1992,
  PASP 104, 1104) (checked by a least-squares Monte Carlo, ``tests/sim/test_velocity_noise.py``).
  Photon-limited lines give ``kappa = 1`` (N photons: sigma_line / sqrt(N)). A pixel has both noises, so
  ``kappa^2`` is the mean of 1 (photon variance) and ``kappa^2`` (``noise.kappa``, default
  ``KAPPA_BACKGROUND_LIMITED = sqrt(2)``, background variance) weighted by their shares of the flux
  variance: ``kappa / SNR_pix = sqrt(var_photon + kappa^2 var_background) / f``. Exact in both limits and
  within 5 % of the Cramer-Rao bound in between (tested).
- ``floor``: wavelength-calibration and template-mismatch systematics of a few km/s: MaNGA DAP ~ a few
  km/s (Westfall et al. 2019, AJ 158, 231), MUSE wavelength solution ~1-2 km/s rms (Weilbacher et al. 2020,
  A&A 641, A28), KMOS/SINFONI lensed-arc kinematics quote 5-10 km/s on the brightest clumps (Livermore et
  al. 2015). Default 5 km/s (``conf/noise``).
- ``sigma_v_max``: a fit on a spaxel with no line finds a centroid anywhere in its velocity window; pixels
  with ``f <= 0`` get the cap.
"""

from __future__ import annotations

import math

import numpy as np

#: Speed of light, km/s.
C_KMS = 299_792.458
#: FWHM / sigma of a Gaussian.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Centroid-error factor of a Gaussian line fit, background-limited, S/N of the optimally weighted line flux.
KAPPA_BACKGROUND_LIMITED = math.sqrt(2.0)


def instrumental_sigma_kms(resolving_power: float | np.ndarray) -> np.ndarray:
    """Instrumental line dispersion (km/s) of spectral resolving power R = lambda / FWHM: c / (2.3548 R)."""
    return C_KMS / (FWHM_PER_SIGMA * np.asarray(resolving_power, dtype=np.float64))


def line_sigma_kms(sigma0_kms: float | np.ndarray, resolving_power: float | np.ndarray) -> np.ndarray:
    """Observed line dispersion (km/s): intrinsic ``sigma0_kms`` and instrumental, in quadrature."""
    s0 = np.asarray(sigma0_kms, dtype=np.float64)
    return np.hypot(s0, instrumental_sigma_kms(resolving_power))


def _per_image(value: float | np.ndarray, ndim: int) -> np.ndarray:
    """A scalar or (B,) per-image value broadcastable against (B, ...) maps of ``ndim`` dimensions."""
    a = np.asarray(value, dtype=np.float64)
    return a.reshape(a.shape + (1,) * (ndim - a.ndim)) if a.ndim else a


def flux_sigma(
    flux: np.ndarray,
    peak: float | np.ndarray,
    peak_snr: float | np.ndarray,
    background_sigma_frac: float,
) -> np.ndarray:
    """Flux noise sigma per pixel (flux units; module docstring), float64.

    ``flux`` is (N, N) or (B, N, N); ``peak`` and ``peak_snr`` scalars or (B,). ``peak_snr`` inf, None or
    <= 0 means no Poisson noise.
    """
    f = np.asarray(flux, dtype=np.float64)
    pk = _per_image(peak, f.ndim)
    snr = _per_image(np.inf if peak_snr is None else peak_snr, f.ndim)
    inv_snr2 = np.where(np.isfinite(snr) & (snr > 0), 1.0 / np.where(snr > 0, snr, 1.0) ** 2, 0.0)
    return np.sqrt(np.clip(f, 0.0, None) * pk * inv_snr2 + (background_sigma_frac * pk) ** 2)


def velocity_sigma_kms(
    flux: np.ndarray,
    peak: float | np.ndarray,
    peak_snr: float | np.ndarray,
    background_sigma_frac: float,
    sigma_line_kms: float | np.ndarray,
    kappa: float = KAPPA_BACKGROUND_LIMITED,
    floor_kms: float = 5.0,
    sigma_v_max_kms: float = np.inf,
) -> np.ndarray:
    """Line-centroid error (km/s) per pixel (module docstring), float64; ``sigma_v_max_kms`` where f <= 0.

    ``sigma_line_kms`` scalar or (B,); the other arguments as in ``flux_sigma``.
    """
    f = np.asarray(flux, dtype=np.float64)
    var_photon = flux_sigma(f, peak, peak_snr, 0.0) ** 2
    var_bg = flux_sigma(np.zeros_like(f), peak, None, background_sigma_frac) ** 2
    positive = f > 0
    # kappa / SNR_pix, with kappa^2 the variance-weighted mean of 1 (photons) and kappa^2 (background)
    spread = np.sqrt(var_photon + kappa * kappa * var_bg)
    ratio = np.where(positive, spread / np.where(positive, f, 1.0), np.inf)
    term = _per_image(sigma_line_kms, f.ndim) * ratio
    with np.errstate(invalid="ignore"):
        sigma = np.sqrt(term * term + floor_kms * floor_kms)
    return np.minimum(np.where(positive, sigma, np.inf), sigma_v_max_kms)

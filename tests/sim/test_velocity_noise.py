"""Velocity-noise model (lensml.sim.velocity_noise): line width, centroid error, the kernel that draws it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import curve_fit

from lensml.sim.instrument import Noise, add_noise
from lensml.sim.velocity_noise import (
    C_KMS,
    KAPPA_BACKGROUND_LIMITED,
    flux_sigma,
    instrumental_sigma_kms,
    line_sigma_kms,
    velocity_sigma_kms,
)


def test_instrumental_and_line_width():
    # R = 3000: FWHM = c / R = 99.93 km/s, sigma = FWHM / 2.3548 = 42.44 km/s
    assert float(instrumental_sigma_kms(3000.0)) == pytest.approx(C_KMS / 3000 / 2.354820045, rel=1e-9)
    assert float(instrumental_sigma_kms(3000.0)) == pytest.approx(42.44, abs=0.01)
    assert float(line_sigma_kms(30.0, 3000.0)) == pytest.approx(np.hypot(30.0, 42.4413), rel=1e-4)


def test_flux_sigma_and_line_snr_regimes():
    f = np.array([1.0, 0.25, 0.01, 0.0, -0.1])
    # Poisson only: sigma_f^2 = f peak / snr^2
    np.testing.assert_allclose(flux_sigma(f, 1.0, 20.0, 0.0), np.sqrt(np.clip(f, 0, None)) / 20.0)
    # background only: constant; None / inf / 0 peak S/N mean no Poisson part
    for off in (None, np.inf, 0.0):
        np.testing.assert_allclose(flux_sigma(f, 2.0, off, 0.05), 0.1)
    # background-limited pixels: sigma_v ~ 1 / f; photon-limited: ~ 1 / sqrt(f); f <= 0: the cap
    bg = velocity_sigma_kms(f, 1.0, None, 0.02, 50.0, kappa=1.0, floor_kms=0.0, sigma_v_max_kms=1e6)
    assert bg[1] / bg[0] == pytest.approx(4.0) and bg[2] / bg[0] == pytest.approx(100.0)
    ph = velocity_sigma_kms(f, 1.0, 30.0, 0.0, 50.0, kappa=1.0, floor_kms=0.0, sigma_v_max_kms=1e6)
    assert ph[1] / ph[0] == pytest.approx(2.0) and ph[0] == pytest.approx(50.0 / 30.0)
    assert np.all(bg[3:] == 1e6) and np.all(ph[3:] == 1e6)
    # the floor adds in quadrature; per-image (B,) parameters broadcast over (B, N, N) maps
    fl = velocity_sigma_kms(np.ones((2, 3, 3)), [1.0, 1.0], [10.0, 20.0], 0.0, [30.0, 60.0], 1.0, 4.0)
    np.testing.assert_allclose(fl[0], 5.0)  # hypot(30 / 10, 4)
    np.testing.assert_allclose(fl[1], 5.0)  # hypot(60 / 20, 4)


def test_kappa_is_the_centroid_error_of_a_gaussian_line_fit():
    """Least-squares fits of a Gaussian line in white noise: std(centroid) = sqrt(2) sigma_line / SNR.

    SNR is the optimal (matched-filter) S/N of the line flux, F / sqrt(2 sqrt(pi) sigma sigma_n^2 / dx).
    """
    rng = np.random.default_rng(0)
    dx, sigma, amp, sigma_n = 1.0, 4.0, 1.0, 0.004
    x = np.arange(-40.0, 40.0, dx)

    def line(x, a, mu, s):
        return a * dx / (np.sqrt(2 * np.pi) * s) * np.exp(-0.5 * ((x - mu) / s) ** 2)

    snr = amp / np.sqrt(2 * np.sqrt(np.pi) * sigma * sigma_n**2 / dx)
    n_fit = 1500
    mus = np.empty(n_fit)
    for i in range(n_fit):
        y = line(x, amp, 0.0, sigma) + rng.normal(0.0, sigma_n, x.size)
        mus[i] = curve_fit(line, x, y, p0=[amp, 0.0, sigma])[0][1]
    kappa = mus.std() * snr / sigma
    assert kappa == pytest.approx(KAPPA_BACKGROUND_LIMITED, rel=4 / np.sqrt(2 * n_fit))


@pytest.mark.parametrize(
    ("level", "peak_snr", "bg"),
    [(0.6, 25.0, 0.02), (0.05, 25.0, 0.02), (0.3, None, 0.03)],
    ids=["photon-dominated", "background-dominated", "background-only"],
)
def test_scatter_of_the_velocity_matches_the_formula(level, peak_snr, bg):
    """On a uniform-S/N image, (v_obs - v_true) / sigma_v(formula) is standard normal (chi-square on its
    variance, KS on its shape): the compiled kernel draws the model of ``velocity_sigma_kms``."""
    b, n = 16, 48
    flux = np.full((b, n, n), level, np.float32)
    flux[:, 0, 0] = 1.0  # the peak that sets the scale (dropped below)
    v_true = np.random.default_rng(1).normal(0.0, 120.0, flux.shape).astype(np.float32)
    line = np.linspace(40.0, 90.0, b)
    noise = Noise(peak_snr=peak_snr, background_sigma_frac=bg, sigma_v_floor_kms=5.0,
                  sigma_v_max_kms=1e4, mask_from="noiseless")
    keys = 1000 + np.arange(b, dtype=np.uint64)
    _, v_obs = add_noise(flux, v_true, np.ones(flux.shape, bool), noise, keys, line)
    sigma = velocity_sigma_kms(level, 1.0, peak_snr, bg, line, noise.kappa, 5.0)  # (B,) at this level
    z = ((v_obs - v_true) / sigma[:, None, None]).reshape(b, -1)[:, 1:].ravel()
    dof = z.size
    assert abs(z.mean()) < 4 / np.sqrt(dof)
    assert abs(np.sum(z**2) - dof) < 4 * np.sqrt(2 * dof)  # chi-square with dof degrees of freedom
    assert stats.kstest(z, "norm").pvalue > 1e-3


@pytest.mark.parametrize("bg_to_photon", [0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0])
def test_mixed_noise_kappa_is_within_5_percent_of_the_cramer_rao_bound(bg_to_photon):
    """Line of N photons on a flat background (per-channel variance N g + b): the exact Cramer-Rao bound of
    the centroid against velocity_sigma_kms for a pixel with the same photon and background flux variances."""
    dx, s, n_ph = 0.05, 1.0, 1e4
    x = np.arange(-12.0, 12.0, dx)
    g = np.exp(-0.5 * (x / s) ** 2) / (np.sqrt(2 * np.pi) * s) * dx
    b = bg_to_photon * n_ph * g.max()
    var = n_ph * g + b
    sigma_mu = 1.0 / np.sqrt(np.sum((n_ph * x / s**2 * g) ** 2 / var))  # Cramer-Rao, channel units
    w = g / var
    w /= np.sum(w * g)  # optimal line-flux estimator: its photon and background variances
    var_ph, var_bg = np.sum(w**2 * n_ph * g), np.sum(w**2 * b)
    # a pixel with flux f = n_ph, peak_snr and background chosen to give those variances (peak = f)
    f = n_ph
    peak_snr = np.sqrt(f * f / var_ph) if var_ph > 0 else np.inf
    bg_frac = np.sqrt(var_bg) / f
    model = velocity_sigma_kms(np.array([f]), f, peak_snr, bg_frac, s, floor_kms=0.0, sigma_v_max_kms=1e9)[0]
    assert model == pytest.approx(sigma_mu, rel=0.05)


def test_reported_sigmas_kernel_matches_the_numpy_reference():
    """The compiled float32 error maps (what samples carry) = velocity_noise's float64 formulas."""
    from lensml.sim.instrument import Noise, reported_sigmas
    from lensml.sim.velocity_noise import flux_sigma

    rng = np.random.default_rng(4)
    f = (rng.random((3, 24, 24)) ** 3 - 0.05).astype(np.float32)  # faint, bright and negative pixels
    snr = np.array([20.0, np.inf, 8.0])
    line = np.array([40.0, 60.0, 80.0])
    noise = Noise(peak_snr=1.0, background_sigma_frac=0.03, sigma_v_floor_kms=4.0, sigma_v_max_kms=250.0)
    s_v, s_f = reported_sigmas(f, noise, line, snr)
    peak = f.reshape(3, -1).max(axis=1).astype(np.float64)
    ref_v = velocity_sigma_kms(f, peak, snr, 0.03, line, noise.kappa, 4.0, 250.0)
    np.testing.assert_allclose(s_v, ref_v, rtol=2e-5)
    np.testing.assert_allclose(s_f, flux_sigma(f, peak, snr, 0.03), rtol=2e-5)

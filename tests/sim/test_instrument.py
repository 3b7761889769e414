"""Instrument and noise (lensml.sim.instrument): PSF kernel, image grid, noise statistics."""

from __future__ import annotations

import numpy as np
import pytest

from lensml.errors import ConfigError
from lensml.sim.instrument import (
    FWHM_PER_SIGMA,
    Noise,
    add_noise,
    check_psf_kernel,
    gaussian_psf_kernel,
    image_coordinates,
)


def test_gaussian_kernel_has_the_requested_fwhm():
    k = gaussian_psf_kernel(0.3, 0.05)  # sigma = 2.55 px
    assert k.shape[0] % 2 == 1 and k.sum() == pytest.approx(1.0)
    r = np.arange(k.shape[0]) - k.shape[0] // 2
    var = (k.sum(axis=0) * r**2).sum()
    assert np.sqrt(var) * FWHM_PER_SIGMA * 0.05 == pytest.approx(0.3, rel=0.01)
    np.testing.assert_allclose(k, k.T)


def test_explicit_kernel_is_checked_and_normalised():
    np.testing.assert_allclose(check_psf_kernel(np.ones((3, 3))).sum(), 1.0)
    with pytest.raises(ConfigError, match="odd"):
        check_psf_kernel(np.ones((4, 4)))


def test_image_coordinates_are_pixel_centres():
    c = image_coordinates(4, 0.5, 1)
    np.testing.assert_allclose(c, [-0.75, -0.25, 0.25, 0.75])
    sub = image_coordinates(4, 0.5, 2)
    np.testing.assert_allclose(sub.reshape(4, 2).mean(axis=1), c)
    assert image_coordinates(4, 0.5, 2, margin_pix=1).shape == (12,)


def test_flux_noise_has_the_requested_peak_snr():
    flux = np.full((1, 64, 64), 4.0)
    mask = np.ones_like(flux, dtype=bool)
    f, _ = add_noise(
        flux,
        np.zeros_like(flux),
        mask,
        Noise(peak_snr=20.0, background_sigma_frac=0.0),
        [np.random.default_rng(0)],
        sigma_line_kms=50.0,
    )
    assert f.mean() == pytest.approx(4.0, rel=0.01)
    assert f.std() == pytest.approx(4.0 / 20.0, rel=0.05)


@pytest.mark.parametrize(
    ("peak_snr", "bg", "ratio"),
    [(None, 0.05, 4.0), (20.0, 0.0, 2.0)],
    ids=["background-limited: 1/f", "photon-limited: 1/sqrt(f)"],
)
def test_velocity_noise_scales_with_the_line_snr_and_stays_in_mask(peak_snr, bg, ratio):
    flux = np.ones((1, 100, 100))
    flux[0, 50:] = 0.25  # a quarter of the peak
    mask = np.ones_like(flux, dtype=bool)
    mask[0, :, :5] = False
    noise = Noise(peak_snr=peak_snr, background_sigma_frac=bg, kappa=1.0, sigma_v_floor_kms=0.0,
                  sigma_v_max_kms=1e4, mask_from="noiseless")
    _, v = add_noise(flux, np.full_like(flux, 30.0), mask, noise, [np.random.default_rng(1)], 60.0)
    bright, faint = v[0, :50, 5:], v[0, 50:, 5:]
    expected = 60.0 * (bg if peak_snr is None else 1 / peak_snr)  # kappa sigma_line / SNR at the peak
    assert bright.mean() == pytest.approx(30.0, abs=5 * expected / np.sqrt(bright.size))
    assert bright.std() == pytest.approx(expected, rel=0.05)
    assert faint.std() == pytest.approx(ratio * expected, rel=0.05)
    assert np.all(v[0, :, :5] == 0)


def test_velocity_noise_floor_and_cap():
    flux = np.ones((1, 100, 100))
    flux[0, 50:] = 0.01
    mask = np.ones_like(flux, dtype=bool)
    noise = Noise(peak_snr=None, background_sigma_frac=0.01, kappa=1.0, sigma_v_floor_kms=4.0,
                  sigma_v_max_kms=40.0, mask_from="noiseless")
    _, v = add_noise(flux, np.zeros_like(flux), mask, noise, [np.random.default_rng(2)], 300.0)
    assert v[0, :50].std() == pytest.approx(np.hypot(3.0, 4.0), rel=0.05)  # 300 / 100 and the floor
    assert v[0, 50:].std() == pytest.approx(40.0, rel=0.05)  # 300 / 1 = 300 km/s, capped


def test_noise_of_a_sample_depends_only_on_its_generator():
    flux = np.random.default_rng(3).uniform(0.1, 1, (3, 16, 16))
    mask = flux > 0.2
    noise = Noise()
    a = add_noise(flux, flux * 10, mask, noise, [np.random.default_rng(i) for i in range(3)], [40, 50, 60])
    b = add_noise(flux[1:2], flux[1:2] * 10, mask[1:2], noise, [np.random.default_rng(1)], 50.0)
    np.testing.assert_array_equal(a[0][1:2], b[0])
    np.testing.assert_array_equal(a[1][1:2], b[1])


def test_observed_mask_follows_the_noisy_flux_not_the_noiseless_isophote():
    """The velocity support must not carry a noise-free outline of the image (the mask leak)."""
    from lensml.sim.instrument import observed_mask

    yy, xx = np.mgrid[-1:1:64j, -1:1:64j]
    flux = np.exp(-((np.hypot(xx, yy) - 0.5) ** 2) / 0.02)[None]  # a ring
    clean_mask = flux > 0.05 * flux.max()
    vel = np.full_like(flux, 50.0)
    out = {}
    for mode in ("observed", "noiseless"):
        noise = Noise(peak_snr=20.0, background_sigma_frac=0.03, mask_from=mode)
        out[mode] = [
            add_noise(flux, vel, clean_mask, noise, [np.random.default_rng(s)], 50.0) for s in (0, 1)
        ]
    # noiseless: the zero pattern of the velocity is the noiseless isophote, whatever the noise draw
    for _f, v in out["noiseless"]:
        np.testing.assert_array_equal(v[0] != 0, clean_mask[0])
    # observed: the zero pattern is exactly the mask of the noisy flux, and it changes with the noise draw
    supports = []
    for f, v in out["observed"]:
        m = observed_mask(f, 0.05, 3.0, 20.0, 0.03)
        np.testing.assert_array_equal(v[0] != 0, m[0])
        supports.append(m[0])
    assert not np.array_equal(supports[0], supports[1])
    assert not np.array_equal(supports[0], clean_mask[0])


@pytest.mark.parametrize("bg", [0.02, 0.05])
def test_observed_mask_keeps_pure_noise_pixels_out(bg):
    """Where there is no flux at all, the S/N cut keeps the mask at its false-alarm rate (~0.1 % at 3 sigma);
    the 5 %-of-peak cut alone is ~1 background sigma at low S/N (bg = 0.05) and lets ~16 % of them in."""
    from lensml.sim.instrument import observed_mask

    yy, xx = np.mgrid[-1:1:96j, -1:1:96j]
    flux = np.exp(-np.hypot(xx, yy) ** 2 / 0.02)[None].repeat(8, axis=0)  # a compact source, empty sky
    empty = flux[0] < 1e-8
    noise = Noise(peak_snr=10.0, background_sigma_frac=bg, mask_min_snr=3.0)
    f, _ = add_noise(flux, np.zeros_like(flux), flux > 0.05, noise, np.arange(8, dtype=np.uint64), 50.0)
    with_cut = observed_mask(f, 0.05, 3.0, 10.0, bg)[:, empty].mean()
    assert with_cut < 0.004
    without = observed_mask(f, 0.05)[:, empty].mean()
    if bg == 0.05:
        assert without > 0.08

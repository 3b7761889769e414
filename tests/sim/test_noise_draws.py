"""Per-pixel noise draws (lensml.sim.noise_draws): exact Poisson counts, Gaussian normals, per-sample keys."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lensml.sim.noise_draws import noise_kernel, poisson_reference

N = 64
PEAK_SNR = 30.0  # counts = flux / peak * PEAK_SNR^2


def _run(
    flux,
    keys,
    peak_snr=PEAK_SNR,
    bg=0.0,
    sigma_line=0.0,
    velocity=None,
    mask_from_observed=False,
    kappa=1.0,
    floor=0.0,
    sigma_v_max=1e9,
):
    flux = np.ascontiguousarray(flux, dtype=np.float32)
    velocity = np.zeros_like(flux) if velocity is None else np.ascontiguousarray(velocity, np.float32)
    out_f, out_v = np.empty_like(flux), np.empty_like(flux)
    b = flux.shape[0]
    noise_kernel(
        flux,
        velocity,
        np.ones(flux.shape, bool),
        np.asarray(keys, dtype=np.uint64),
        np.broadcast_to(np.asarray(peak_snr, np.float64), (b,)).copy(),
        np.broadcast_to(np.asarray(sigma_line, np.float64), (b,)).copy(),
        bg,
        kappa,
        floor,
        sigma_v_max,
        0.0,
        mask_from_observed,
        out_f,
        out_v,
    )
    return out_f, out_v


def _counts_of_constant_mean(lam: float, n_images: int) -> np.ndarray:
    """Counts of mean ``lam`` from ``n_images`` images (the peak pixel, which sets the scale, is dropped)."""
    level = np.float32(lam / PEAK_SNR**2)
    flux = np.full((n_images, N, N), level, np.float32)
    flux[:, 0, 0] = 1.0
    out, _ = _run(flux, 1 + 7919 * np.arange(n_images))
    counts = np.rint(out.reshape(n_images, -1)[:, 1:].astype(np.float64) * PEAK_SNR**2)
    return counts.ravel()


@pytest.mark.parametrize("lam", [0.02, 0.5, 2.0, 7.0, 9.99, 10.0, 10.5, 30.0, 200.0, 900.0])
def test_poisson_counts_follow_the_poisson_distribution(lam):
    """Chi-square goodness of fit over the bins with >= 5 expected counts; mean and variance (4 sigma)."""
    counts = _counts_of_constant_mean(lam, 64)  # ~262k draws
    lam = float(np.float32(lam / PEAK_SNR**2)) * PEAK_SNR**2
    n = counts.size
    assert abs(counts.mean() - lam) < 4 * np.sqrt(lam / n)
    assert abs(counts.var() - lam) < 4 * lam * np.sqrt((2 + 1 / lam) / n)
    k_hi = int(stats.poisson.ppf(1 - 1e-9, lam)) + 1
    observed = np.bincount(np.minimum(counts.astype(int), k_hi), minlength=k_hi + 1).astype(float)
    expected = stats.poisson.pmf(np.arange(k_hi + 1), lam) * n
    expected[-1] = stats.poisson.sf(k_hi - 1, lam) * n
    obs_bins, exp_bins, o, e = [], [], 0.0, 0.0
    for oo, ee in zip(observed, expected):  # merge neighbouring bins until each expects >= 5
        o, e = o + oo, e + ee
        if e >= 5:
            obs_bins.append(o)
            exp_bins.append(e)
            o, e = 0.0, 0.0
    obs_bins[-1] += o
    exp_bins[-1] += e
    exp_bins = np.array(exp_bins) * sum(obs_bins) / sum(exp_bins)
    assert stats.chisquare(obs_bins, exp_bins).pvalue > 1e-3


def test_kernel_counts_equal_the_sequential_reference():
    """The SIMD passes and compacted rounds draw exactly the counts of the plain sequential algorithm."""
    rng = np.random.default_rng(3)
    flux = np.exp(rng.uniform(-12, 0, (3, 40, 40))).astype(np.float32)  # means from ~0 to 900: every branch
    flux[:, 0, 0] = 1.0
    keys = np.array([11, 2**63 + 5, 999], dtype=np.uint64)
    out, _ = _run(flux, keys)
    for b in range(3):
        lam = flux[b].ravel().astype(np.float64) * PEAK_SNR**2
        ref = [poisson_reference(float(lam[p]), keys[b], p) for p in range(lam.size)]
        np.testing.assert_array_equal(out[b].ravel(), (np.array(ref) / PEAK_SNR**2).astype(np.float32))


def test_gaussian_background_and_velocity_noise_are_standard_normal():
    flux = np.full((4, N, N), 0.5, np.float32)
    flux[:, 0, 0] = 1.0
    # background only: SNR_pix = 0.5 / 0.1 = 5, sigma_v = kappa sigma_line / 5 = 10 km/s (no floor)
    out_f, out_v = _run(flux, [5, 6, 7, 8], peak_snr=0.0, bg=0.1, sigma_line=50.0)
    z_bg = ((out_f - flux) / np.float32(0.1)).reshape(4, -1)[:, 1:].ravel()
    z_v = (out_v / 10.0).reshape(4, -1)[:, 1:].ravel()
    for z in (z_bg, z_v):
        assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.std() - 1) < 4 / np.sqrt(2 * z.size)
        assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z_bg, z_v)[0, 1]) < 4 / np.sqrt(z_bg.size)  # the two normals of a pixel


def test_noise_of_an_image_depends_only_on_its_key():
    rng = np.random.default_rng(0)
    flux = rng.uniform(0.0, 1.0, (5, 24, 24)).astype(np.float32)
    vel = rng.normal(0, 100, flux.shape).astype(np.float32)
    keys = np.array([3, 4, 5, 6, 7], dtype=np.uint64)
    snr, line = np.array([10.0, 20.0, 0.0, 40.0, 50.0]), np.array([30.0, 45.0, 60.0, 75.0, 90.0])
    batch = _run(flux, keys, peak_snr=snr, bg=0.02, sigma_line=line, velocity=vel)
    for i in (0, 2, 3, 4):  # each image with its own peak S/N and line width
        alone = _run(flux[i : i + 1], keys[i : i + 1], peak_snr=snr[i], bg=0.02, sigma_line=line[i],
                     velocity=vel[i : i + 1])
        np.testing.assert_array_equal(batch[0][i], alone[0][0])
        np.testing.assert_array_equal(batch[1][i], alone[1][0])
    other = _run(flux[:1], [4], bg=0.02)
    assert not np.array_equal(other[0][0], _run(flux[:1], [3], bg=0.02)[0][0])


def test_image_without_flux_is_left_unchanged():
    flux = np.zeros((2, 8, 8), np.float32)
    flux[1] = -1.0
    vel = np.full_like(flux, 50.0)
    out_f, out_v = _run(flux, [1, 2], bg=0.1, sigma_line=50.0, velocity=vel)
    np.testing.assert_array_equal(out_f, flux)
    assert (out_v == 0).all()

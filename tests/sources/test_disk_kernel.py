"""Compiled disk grids (lensml.sources.disk_kernel) against the numpy disk model in float64."""

from __future__ import annotations

import numpy as np

from lensml.sources.disk import disk_maps_on_grid
from lensml.sources.disk_kernel import disk_grids_f32


def _params(b: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    k = 3
    return {
        "center_x": rng.uniform(-0.2, 0.2, b),
        "center_y": rng.uniform(-0.2, 0.2, b),
        "inclination_deg": rng.uniform(0, 80, b),
        "position_angle_deg": rng.uniform(0, 360, b),
        "scale_radius_arcsec": rng.uniform(0.1, 0.25, b),
        "v_max_kms": rng.uniform(100, 300, b),
        "r_turn_arcsec": rng.uniform(0.03, 0.12, b),
        "v_sys_kms": rng.uniform(-20, 20, b),
        "sigma0_kms": np.full(b, 50.0),
        "bulge_amp": np.where(np.arange(b) % 2 == 0, rng.uniform(0.2, 0.6, b), 0.0),
        "bulge_r_eff_arcsec": rng.uniform(0.02, 0.06, b),
        "bulge_sersic_n": rng.uniform(1.0, 4.0, b),
        "clump_r_arcsec": rng.uniform(0.05, 0.4, (b, k)),
        "clump_phi_deg": rng.uniform(0, 360, (b, k)),
        "clump_amp": np.where(rng.uniform(size=(b, k)) < 0.6, rng.uniform(0.2, 0.8, (b, k)), 0.0),
        "clump_sigma_arcsec": rng.uniform(0.015, 0.04, (b, k)),
    }


def test_disk_kernel_matches_the_float64_model():
    b, m = 7, 48
    prm = _params(b)
    half = np.full(b, 1.1)
    flux, vel = disk_grids_f32(prm, half, m)
    u = (np.arange(m) + 0.5) / m * 2.0 - 1.0
    axis_x = prm["center_x"][:, None] + half[:, None] * u
    axis_y = prm["center_y"][:, None] + half[:, None] * u
    ref_f, ref_v = disk_maps_on_grid(axis_x, axis_y, prm)
    assert flux.dtype == np.float32 and flux.shape == (b, m, m)
    # flux > 0 everywhere (capped exponentials); float32 rounding of an exponent of size ~40: ~5e-6
    np.testing.assert_allclose(flux, ref_f, rtol=1e-5, atol=0)
    np.testing.assert_allclose(vel, ref_v, rtol=0, atol=2e-4)  # km/s, |v| up to ~300
    assert np.abs(ref_v).max() > 100


def test_without_clumps_and_a_single_sample():
    prm = _params(3)
    for name in ("clump_r_arcsec", "clump_phi_deg", "clump_amp", "clump_sigma_arcsec"):
        prm[name] = prm[name][:, :0]
    flux, vel = disk_grids_f32(prm, np.array([0.8, 1.0, 1.2]), 16)
    one_f, one_v = disk_grids_f32({k: v[1:2] for k, v in prm.items()}, np.array([1.0]), 16)
    np.testing.assert_array_equal(flux[1], one_f[0])
    np.testing.assert_array_equal(vel[1], one_v[0])

"""Analytic rotating disk (lensml.sources.disk): the rotation-curve formula, components, numpy == torch."""

from __future__ import annotations

import math

import numpy as np
import torch

from lensml.sources.disk import disk_extent_arcsec, disk_maps, disk_maps_on_grid


def _params(**kw) -> dict[str, np.ndarray]:
    p = dict(
        center_x=0.1,
        center_y=-0.05,
        inclination_deg=60.0,
        position_angle_deg=30.0,
        scale_radius_arcsec=0.2,
        v_max_kms=200.0,
        r_turn_arcsec=0.1,
        v_sys_kms=15.0,
        sigma0_kms=40.0,
        bulge_amp=0.0,
        bulge_r_eff_arcsec=0.05,
        bulge_sersic_n=2.0,
    )
    p.update(kw)
    out = {k: np.array([v], dtype=float) for k, v in p.items()}
    for name in ("clump_r_arcsec", "clump_phi_deg", "clump_amp", "clump_sigma_arcsec"):
        out[name] = np.asarray(kw.get(name, np.zeros((1, 0))), dtype=float).reshape(1, -1)
    return out


def test_velocity_follows_the_rotation_curve_formula():
    p = _params()
    pa, inc = math.radians(30.0), math.radians(60.0)
    # points in the disk plane (R, theta) projected to the sky
    r = np.array([0.02, 0.1, 0.3, 0.5])
    th = np.array([0.0, 1.0, 2.5, 4.0])
    xm, ym = r * np.cos(th), r * np.sin(th) * math.cos(inc)
    x = 0.1 + xm * math.cos(pa) - ym * math.sin(pa)
    y = -0.05 + xm * math.sin(pa) + ym * math.cos(pa)
    flux, vel = disk_maps(x[None], y[None], p)
    expected = 200.0 * (1 - np.exp(-r / 0.1)) * math.sin(inc) * np.cos(th) + 15.0
    np.testing.assert_allclose(vel[0], expected, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(flux[0], np.exp(-r / 0.2), rtol=1e-12)


def test_centre_is_finite_and_systemic():
    p = _params()
    flux, vel = disk_maps(np.array([[0.1]]), np.array([[-0.05]]), p)
    assert flux[0, 0] == 1.0 and vel[0, 0] == 15.0


def test_face_on_disk_has_no_rotation_signal():
    p = _params(inclination_deg=0.0)
    x, y = np.meshgrid(np.linspace(-0.5, 0.5, 21), np.linspace(-0.5, 0.5, 21))
    _, vel = disk_maps(x[None], y[None], p)
    np.testing.assert_allclose(vel, 15.0, atol=1e-9)


def test_bulge_adds_systemic_flux_and_clumps_carry_disk_velocity():
    x = np.array([[0.1, 0.3]])
    y = np.array([[-0.05, 0.2]])
    base_f, base_v = disk_maps(x, y, _params())
    bulge_f, bulge_v = disk_maps(x, y, _params(bulge_amp=0.5))
    assert bulge_f[0, 0] > base_f[0, 0] + 0.5  # the bulge is brightest at the centre
    assert abs(bulge_v[0, 1] - 15.0) < abs(base_v[0, 1] - 15.0)  # pulled toward systemic
    # a clump at disk-plane (R=0.25, phi=0): its flux-weighted velocity is the disk's at that point
    clump = dict(
        clump_r_arcsec=[[0.25]], clump_phi_deg=[[0.0]], clump_amp=[[5.0]], clump_sigma_arcsec=[[0.02]]
    )
    pa = math.radians(30.0)
    cx, cy = 0.1 + 0.25 * math.cos(pa), -0.05 + 0.25 * math.sin(pa)
    f_c, v_c = disk_maps(np.array([[cx]]), np.array([[cy]]), _params(**clump))
    f_0, v_0 = disk_maps(np.array([[cx]]), np.array([[cy]]), _params())
    assert f_c[0, 0] > f_0[0, 0] + 4.9
    np.testing.assert_allclose(v_c[0, 0], v_0[0, 0], rtol=1e-12)
    assert disk_extent_arcsec(_params(**clump))[0] >= 0.25


def test_numpy_and_torch_agree():
    p = _params(
        bulge_amp=0.3,
        clump_r_arcsec=[[0.2, 0.1]],
        clump_phi_deg=[[40.0, 200.0]],
        clump_amp=[[0.5, 0.0]],
        clump_sigma_arcsec=[[0.03, 1.0]],
    )
    x, y = np.meshgrid(np.linspace(-0.6, 0.8, 33), np.linspace(-0.7, 0.6, 31))
    f_np, v_np = disk_maps(x[None], y[None], p)
    tp = {k: torch.as_tensor(v) for k, v in p.items()}
    f_t, v_t = disk_maps(torch.as_tensor(x)[None], torch.as_tensor(y)[None], tp)
    np.testing.assert_allclose(f_t.numpy(), f_np, rtol=1e-12)
    np.testing.assert_allclose(v_t.numpy(), v_np, rtol=1e-10, atol=1e-9)
    assert np.isfinite(v_np).all() and np.ptp(v_np) > 100


def test_grid_evaluation_matches_pointwise_evaluation():
    """disk_maps_on_grid (separable clumps, row + column terms) == disk_maps on the same positions."""
    clumps = dict(
        clump_r_arcsec=[[0.2, 0.1]],
        clump_phi_deg=[[30.0, 200.0]],
        clump_amp=[[0.5, 0.0]],
        clump_sigma_arcsec=[[0.03, 1.0]],
    )
    p = _params(bulge_amp=0.4, **clumps)
    x_axis = 0.1 + np.linspace(-0.6, 0.6, 40)[None]
    y_axis = -0.05 + np.linspace(-0.5, 0.7, 48)[None]
    x = np.broadcast_to(x_axis[:, None, :], (1, 48, 40))
    y = np.broadcast_to(y_axis[:, :, None], (1, 48, 40))
    f_grid, v_grid = disk_maps_on_grid(x_axis, y_axis, p)
    f_pt, v_pt = disk_maps(x, y, p)
    assert f_grid.shape == (1, 48, 40)
    np.testing.assert_allclose(f_grid, f_pt, rtol=1e-12)
    np.testing.assert_allclose(v_grid, v_pt, rtol=1e-9, atol=1e-9)
    assert f_grid.max() > 1.3  # the bulge and the clump are there
    tp = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in p.items()}
    f_t, v_t = disk_maps_on_grid(torch.as_tensor(x_axis).float(), torch.as_tensor(y_axis).float(), tp)
    np.testing.assert_allclose(f_t.numpy(), f_pt, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v_t.numpy(), v_pt, rtol=1e-4, atol=1e-3)


def test_a_clump_with_its_own_velocity_moves_the_line_by_it():
    """A bright clump with clump_dv_kms = +60 km/s: at its centre the flux-weighted velocity is the disk's
    there plus 60 km/s times its share of the flux; the compiled kernel agrees with the numpy model."""
    from lensml.sources.disk_kernel import disk_grids_f32

    clump = dict(
        clump_r_arcsec=[[0.25]], clump_phi_deg=[[0.0]], clump_amp=[[50.0]], clump_sigma_arcsec=[[0.02]]
    )
    pa = math.radians(30.0)
    cx, cy = 0.1 + 0.25 * math.cos(pa), -0.05 + 0.25 * math.sin(pa)
    at = (np.array([[cx]]), np.array([[cy]]))
    _, v_0 = disk_maps(*at, _params())
    f_c, v_c = disk_maps(*at, {**_params(**clump), "clump_dv_kms": np.array([[60.0]])})
    f_d, _ = disk_maps(*at, _params())
    share = (f_c[0, 0] - f_d[0, 0]) / f_c[0, 0]
    np.testing.assert_allclose(v_c[0, 0] - v_0[0, 0], 60.0 * share, rtol=1e-9)
    assert share > 0.9
    prm = {**_params(**clump), "clump_dv_kms": np.array([[-45.0]])}
    half = np.array([0.6])
    f32, v32 = disk_grids_f32(prm, half, 64)
    u = (np.arange(64) + 0.5) / 64 * 2.0 - 1.0
    xg = prm["center_x"][:, None] + half[:, None] * u[None, :]
    yg = prm["center_y"][:, None] + half[:, None] * u[None, :]
    from lensml.sources.disk import disk_maps_on_grid

    f64, v64 = disk_maps_on_grid(xg, yg, prm)
    np.testing.assert_allclose(v32, v64, atol=0.05)
    assert np.abs(v64 - disk_maps_on_grid(xg, yg, {**prm, "clump_dv_kms": np.zeros((1, 1))})[1]).max() > 30

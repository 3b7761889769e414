"""The cube's moments equal the flux and velocity maps; its voxel noise reproduces the flux noise."""

from __future__ import annotations

import math

import numpy as np
import torch

from lensml.inference.cube import channel_edges, render_cube, voxel_sigma
from lensml.inference.renderer import build_scene, render


def test_cube_moments_are_the_flux_and_velocity_maps(sim_draws) -> None:  # noqa: ANN001
    sim, draws = sim_draws
    scene, theta = build_scene(sim, draws, 1)
    t = torch.as_tensor(theta)
    f, v = (a.numpy() for a in render(scene, t))
    edges = channel_edges(64, 600.0)
    cube = render_cube(scene, t, edges, 50.0).numpy()
    centres = 0.5 * (edges[1:] + edges[:-1])
    m0 = cube.sum(axis=0)
    m1 = (centres[:, None, None] * cube).sum(axis=0) / np.where(m0 > 0, m0, 1.0)
    mask = f > 0.05 * f.max()
    np.testing.assert_allclose(m0, f, rtol=1e-6, atol=1e-9 * f.max())
    assert np.abs(m1 - v)[mask].max() < 0.05  # km/s; channel width 19 km/s, sigma 50 km/s


def test_voxel_noise_gives_the_pixel_flux_noise_for_a_gaussian_line() -> None:
    """Background-limited: the matched-filter flux S/N over the channels equals f / sigma_f."""
    sigma_line, dv, peak, frac = 60.0, 10.0, 1.0, 0.02
    edges = np.arange(-600.0, 600.0 + dv, dv)
    centres = 0.5 * (edges[1:] + edges[:-1])
    profile = np.diff(0.5 * (1 + np.vectorize(math.erf)(edges / (math.sqrt(2) * sigma_line))))
    f = 0.3
    s_vox = voxel_sigma(np.zeros_like(centres), peak, np.inf, frac, dv, sigma_line)
    snr_opt = math.sqrt(np.sum((f * profile / s_vox) ** 2))
    assert abs(snr_opt / (f / (frac * peak)) - 1) < 1e-3


def test_cube_data_set_in_the_forecast(sim_draws) -> None:  # noqa: ANN001
    """The cube carries at least the flux map's information (matched over its channels) and more."""
    from lensml.inference.forecast_draw import Settings, draw_significance

    sim, draws = sim_draws
    st = Settings(
        {"none": [], "macro": ["macro"], "mp": ["macro", "pixelated"]}, [25.0], pixel_n=6, cube_channels=16
    )
    res = draw_significance([sim], [draws], 1, st)
    cube, flux = res["cube@16"], res["flux"]
    assert cube["none"][0] >= 0.97 * flux["none"][0]
    assert cube["macro"][0] <= cube["none"][0] and np.isnan(cube["mp"][0])


def test_differentiable_cube_equals_the_simulators_cube() -> None:
    """The forecast's cube and the production simulator's (``instrument.n_velocity_channels``, torch float64)
    share ``lensml.sim.cube``: the same channels and lines give the same cube to 1e-4 of its peak."""
    from tests.inference.conftest import make_sim

    sim = make_sim(["instrument.n_velocity_channels=16", "instrument.velocity_range_kms=400"])
    draws = sim.draw_batch(0, "test", np.arange(2))
    ref = sim.render_noiseless(draws, "test")["cube"]
    edges = sim.instrument.channel_edges_kms
    np.testing.assert_allclose(edges, channel_edges(16, 400.0))
    for i in range(2):
        scene, theta = build_scene(sim, draws, i)
        cube = render_cube(scene, torch.as_tensor(theta), edges, float(draws.sigma_line_kms[i])).numpy()
        assert np.abs(cube - ref[i]).max() / ref[i].max() < 1e-4

"""The fitter (issue 15): Jacobian vs finite differences, recovery of the truth on noiseless data, the smooth
fit's chi-square distribution over noise draws, and the data-driven multi-start."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lensml.inference import physics
from lensml.inference.fit import FitSettings, _lsq, fit_smooth
from lensml.inference.fit_model import Observed, Problem, SubhaloTable, fit_scene, smooth_free
from lensml.inference.renderer import DTYPE, render
from tests.inference.conftest import make_sim

#: a small clean problem: 16 x 16 pixels of 0.2" (3.2" field), disk without bulge or clumps, no multipoles
SMALL = [
    "instrument.n_pix=16",
    "instrument.pixel_scale_arcsec=0.2",
    "source.n_clumps=0",
    "source.p_bulge=0",
    "lens.multipoles.orders=[]",
]


def _noiseless(sim, draws, i: int, use_velocity: bool, with_sub: bool = False):  # noqa: ANN001, ANN202
    """Scene, truth, noiseless data as an ``Observed`` with the ideal-observer sigmas of the smooth model."""
    scene, truth = fit_scene(sim, draws, i)
    with torch.no_grad():
        f0, v0 = (a.numpy() for a in render(scene, torch.as_tensor(truth, dtype=DTYPE), with_sub))
    s_f, s_v = physics.noise_sigmas(sim, f0, draws, i, 5.0)
    peak = float(f0.max())
    obs = Observed(
        f0, v0, np.maximum(s_f, 1e-9 * peak), np.maximum(s_v, 1e-3), f0 > 0.05 * peak, use_velocity
    )
    return scene, truth, obs


@pytest.fixture(scope="module")
def small():  # noqa: ANN201
    sim = make_sim(SMALL, mass_bin=1e10)
    return sim, sim.draw_batch(0, "test", np.arange(3))


def test_jacobian_matches_finite_differences(small) -> None:  # noqa: ANN001
    sim, draws = small
    scene, truth, obs = _noiseless(sim, draws, 0, use_velocity=True)
    free = [
        "macro.theta_E",
        "macro.e1",
        "shear.gamma2",
        "src.center_x",
        "src.inclination_deg",
        "src.v_max_kms",
    ]
    te = float(truth[scene.names.index("macro.theta_E")])
    table = SubhaloTable(sim, te, 0.1, te, (0.0, 0.0))
    prob = Problem(scene, obs, truth, free, table)
    t = np.concatenate([truth[prob.idx], [10.3, te, 0.1]])
    jac = prob.jac(t)
    steps = np.array([1e-5, 1e-5, 1e-5, 1e-5, 1e-3, 1e-3, 1e-4, 1e-5, 1e-5])
    for k, h in enumerate(steps):
        e = np.zeros_like(t)
        e[k] = h
        fd = (prob.resid(t + e) - prob.resid(t - e)) / (2 * h)
        scale = np.abs(fd).max()
        assert scale > 0, prob.names[k]
        assert np.abs(jac[:, k] - fd).max() < 2e-4 * scale + 1e-6, prob.names[k]


def test_noiseless_fit_recovers_the_truth_from_a_perturbed_start(small) -> None:  # noqa: ANN001
    sim, draws = small
    scene, truth, obs = _noiseless(sim, draws, 1, use_velocity=True)
    free = smooth_free(scene, True)
    prob = Problem(scene, obs, truth, free)
    t_true = truth[prob.idx]
    start = t_true.copy()
    for name, dv in (
        ("macro.theta_E", 0.03),
        ("macro.e1", 0.03),
        ("shear.gamma1", -0.02),
        ("src.center_x", 0.03),
        ("src.inclination_deg", 5.0),
        ("src.v_max_kms", 20.0),
    ):
        start[free.index(name)] += dv
    assert prob.chi2(start) > 100.0
    t, chi2, _ = _lsq(prob, start, 60)
    assert chi2 < 1e-6
    got = dict(zip(free, t))
    want = dict(zip(free, t_true))
    # stated precision: theta_E, e, shear, centres 1e-4 (arcsec, -); angle 0.05 deg; v_max 0.5 km/s
    for name in ("macro.theta_E", "macro.e1", "macro.e2", "shear.gamma1", "shear.gamma2", "src.center_x"):
        assert got[name] == pytest.approx(want[name], abs=1e-4), name
    assert got["src.inclination_deg"] == pytest.approx(want["src.inclination_deg"], abs=0.05)
    assert got["src.v_max_kms"] == pytest.approx(want["src.v_max_kms"], abs=0.5)


def test_smooth_fit_chi2_follows_its_degrees_of_freedom(small) -> None:  # noqa: ANN001
    """Over noise draws of a sample without subhalo, min chi^2 ~ chi2(N_data - N_params): mean N - p."""
    sim, draws = small
    scene, truth, obs0 = _noiseless(sim, draws, 2, use_velocity=True)
    free = [
        "macro.theta_E",
        "macro.e1",
        "macro.e2",
        "shear.gamma1",
        "src.center_x",
        "src.center_y",
        "src.amplitude",
        "src.v_max_kms",
    ]
    rng = np.random.default_rng(1)
    chi2_min, chi2_true = [], []
    n_draws = 40
    for _ in range(n_draws):
        obs = Observed(
            obs0.flux + obs0.sigma_f * rng.standard_normal(obs0.flux.shape),
            obs0.velocity + obs0.sigma_v * rng.standard_normal(obs0.flux.shape),
            obs0.sigma_f,
            obs0.sigma_v,
            obs0.vmask,
            True,
        )
        prob = Problem(scene, obs, truth, free)
        chi2_true.append(prob.chi2(truth[prob.idx]))
        chi2_min.append(_lsq(prob, truth[prob.idx], 8)[1])
    n, p = obs0.n_data, len(free)
    sd_mean = np.sqrt(2.0 * (n - p) / n_draws)
    assert np.mean(chi2_true) == pytest.approx(n, abs=4 * np.sqrt(2.0 * n / n_draws))
    assert np.mean(chi2_min) == pytest.approx(n - p, abs=4 * sd_mean)
    # the fit removes p degrees of freedom: E[chi2_true - chi2_min] = p (paired, much tighter)
    assert np.mean(np.subtract(chi2_true, chi2_min)) == pytest.approx(p, abs=4 * np.sqrt(2.0 * p / n_draws))


def test_grid_start_multistart_finds_the_global_minimum(small) -> None:  # noqa: ANN001
    sim, draws = small
    scene, truth, obs = _noiseless(sim, draws, 0, use_velocity=True)
    st = FitSettings(n_starts=3, start_nfev=10, final_nfev=40)
    res = fit_smooth(scene, obs, 0.2, st)  # no truth passed: the start is the data-driven grid
    assert res["chi2"] < 1e-3 * obs.n_data
    te = res["theta"][scene.names.index("macro.theta_E")]
    assert te == pytest.approx(truth[scene.names.index("macro.theta_E")], abs=2e-3)
    with pytest.raises(Exception, match="oracle"):
        fit_smooth(scene, obs, 0.2, FitSettings(start="oracle"))

"""The analytic marginalisation (Schur complement) equals brute-force least squares; the forecast's
unmarginalised significance equals the ideal observer's (``lensml.analysis.signal``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from omegaconf import OmegaConf

from lensml.analysis.scoring import compose_train_config
from lensml.analysis.signal import floor_key, perturbation_snr
from lensml.inference.fisher import (
    brute_force_delta_chi2,
    delta_chi2,
    delta_chi2_many,
    difference_operator,
)
from lensml.inference.forecast_draw import Settings, dataset_key, draw_significance, smooth_model
from tests.inference.conftest import make_sim


def test_schur_complement_equals_least_squares() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=200)
    g = rng.normal(size=(200, 12))
    g[:, 3] = 0.0  # a parameter the data do not constrain (a velocity parameter for flux-only data)
    d = difference_operator(2)
    prior = np.zeros((12, 12))
    prior[4:8, 4:8] = 3.0 * d.T @ d
    for pr in (None, prior):
        ref = brute_force_delta_chi2(z, g, pr)
        assert delta_chi2(z, g, pr) == pytest.approx(ref, rel=1e-10)
        got = delta_chi2_many(np.array([z @ z]), (g.T @ z)[:, None], g.T @ g, pr)[0]
        assert got == pytest.approx(ref, rel=1e-8)
    assert delta_chi2(z, g) < z @ z  # marginalising can only lose significance
    assert delta_chi2(z, g, prior) >= delta_chi2(z, g) - 1e-9  # a prior keeps some of it


def test_pixelated_marginalisation_on_a_rendered_sample_equals_least_squares() -> None:
    """A small real case: macro lens + an 8 x 8 pixelated source (flux and f v) with its curvature prior,
    the whitened Jacobian columns of a rendered sample, against explicit least squares."""
    sims = [make_sim(["instrument.n_pix=24", "instrument.pixel_scale_arcsec=0.133"])]
    draws = [sims[0].draw_batch(0, "test", np.arange(1))]
    st = Settings({"mp": ["macro", "pixelated"]}, [10.0], pixel_n=8)
    model = smooth_model(sims[0], draws[0], 0, st)
    from lensml.inference import physics

    f0 = model["f0"]
    sig_f, _ = physics.noise_sigmas(sims[0], f0, draws[0], 0, 10.0)
    g = model["jf"] / sig_f.reshape(-1, 1)
    prior = np.zeros((g.shape[1],) * 2)
    for sl, block in model["prior_blocks"]:
        prior[sl, sl] = block
    rng = np.random.default_rng(1)
    z = rng.normal(size=g.shape[0]) + g @ rng.normal(size=g.shape[1])
    ref = brute_force_delta_chi2(z, g, prior)
    got = delta_chi2_many(np.array([z @ z]), (g.T @ z)[:, None], g.T @ g, prior)[0]
    assert got == pytest.approx(ref, rel=1e-6)
    assert ref < 0.9 * z @ z  # the nuisance explains a real part of z


def test_unmarginalised_forecast_equals_the_ideal_observer() -> None:
    """``none`` = sqrt(sum (d / sigma)^2) of ``perturbation_snr`` (the same draws, noise model, masks)."""
    n, floors = 6, [3.0, 25.0]
    base = compose_train_config(["sim.dtype=float64"])
    cfg = copy.deepcopy(base)
    OmegaConf.update(cfg, "subhalo.mass_bin", 1e10)
    ref = perturbation_snr(cfg, n, seed=0, floors_kms=floors)
    sim = make_sim()
    draws = sim.draw_batch(0, "test", np.arange(n))
    st = Settings({"none": []}, floors)
    rows = [draw_significance([sim], [draws], i, st) for i in range(n)]
    flux = np.array([r["flux"]["none"][0] for r in rows])
    assert np.median(flux) == pytest.approx(ref["flux_snr"]["median"], rel=2e-3)
    for fl in floors:
        both = np.array([r[dataset_key(fl)]["none"][0] for r in rows])
        v_snr = np.sqrt(np.maximum(both**2 - flux**2, 0.0))
        want = ref["velocity"][floor_key(fl)]["velocity_snr"]["median"]
        assert np.median(v_snr) == pytest.approx(want, rel=5e-3)

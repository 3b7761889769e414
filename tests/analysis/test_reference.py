"""Reference chi-square detectors and the oracle-residual input, on cases with a known answer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hydra.utils import instantiate

from lensml.analysis.reference import chi2_scores, reference_metrics
from lensml.data.cache import physics_config
from lensml.data.oracle import smooth_residuals
from lensml.errors import ConfigError
from lensml.sim.simulator import build_simulator
from lensml.sim.velocity_noise import flux_sigma


def _sim(compose_train, tiny, *extra):
    return build_simulator(physics_config(compose_train(*tiny, *extra)))


def test_null_statistics_follow_chi_square(compose_train, tiny):
    """No subhalo: T = sum z^2 over n pixels has mean n and variance 2n (z unit normal)."""
    sim = _sim(compose_train, tiny, "subhalo.p_present=0.0")
    s = chi2_scores(smooth_residuals(sim, 0, "test", np.arange(64)))
    for t, n in ((s["t_flux"], s["n_flux"]), (s["t_velocity"], s["n_velocity"])):
        z = (t - n) / np.sqrt(2 * n)
        assert abs(z.mean()) < 0.4 and 0.6 < z.std() < 1.4, (z.mean(), z.std())
    # a broken sigma (x 1.1) moves the null far away: the test can fail
    z_bad = (s["t_flux"] / 1.21 - s["n_flux"]) / np.sqrt(2 * s["n_flux"])
    assert abs(z_bad.mean()) > 2


def test_excess_chi_square_is_the_matched_filter_snr(compose_train, tiny):
    """With a subhalo: E[T_f] - n = sum ((f_sub - f_smooth) / sigma)^2, the ideal observer's S/N^2."""
    sim = _sim(compose_train, tiny, "subhalo.p_present=1.0", "subhalo.mass_bin=1e10")
    idx = np.arange(48)
    s = chi2_scores(smooth_residuals(sim, 0, "test", idx))
    draws = sim.draw_batch(0, "test", idx)
    f1 = sim.render_noiseless(draws, "test")["flux"].astype(float)
    f0 = sim.render_noiseless(dataclasses.replace(draws, present=np.zeros(48, bool)), "test")["flux"]
    peak = f0.reshape(48, -1).max(axis=1)
    snr2 = (((f1 - f0) / flux_sigma(f0, peak, draws.peak_snr, sim.noise.background_sigma_frac)) ** 2)
    snr2 = snr2.reshape(48, -1).sum(axis=1)
    excess = s["t_flux"] - s["n_flux"]
    sd = np.sqrt((2 * s["n_flux"] + 4 * snr2).sum()) / 48  # sd of the mean excess
    assert snr2.mean() > 5 * sd  # the subhalo is detectable on average here
    assert abs(excess.mean() - snr2.mean()) < 4 * sd, (excess.mean(), snr2.mean(), sd)


def test_reference_auc_is_high_for_massive_subhaloes(compose_train, tiny):
    cfg = compose_train(*tiny, "subhalo.mass_bin=1e11", "data.n_test=96")
    res = reference_metrics(cfg)
    assert res["n"] == 96 and res["flux"]["auc"] > 0.95 and res["flux_velocity"]["auc"] > 0.95
    assert res["flux"]["per_mass_bin"]


def test_oracle_residual_input_mode(compose_train, tiny):
    over = (*tiny, "data.n_train=4", "data.n_val=4", "data.n_test=4", "data.num_workers=0",
            "model=dual_stream", "data.channels=flux_velocity_mask", "data.oracle_residual=true")
    cfg = compose_train(*over)
    dm = instantiate(cfg.data, _partial_=True, _convert_="all")(sim_cfg=physics_config(cfg))
    dm.setup("fit")
    batch = dm.datasets["val"].__getitems__([0, 1, 2])
    ref = smooth_residuals(build_simulator(physics_config(cfg)), int(cfg.data.seed), "val", np.arange(3))
    np.testing.assert_allclose(batch["x"][:, 0].numpy(), ref["flux_resid_z"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batch["x"][:, 1].numpy(), ref["velocity_resid_z"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(batch["x"][:, 2].numpy(), ref["resid_mask"].astype(np.float32))
    with pytest.raises(ConfigError, match="data.oracle_residual"):
        instantiate(compose_train(*over, "data.channels=flux_shuffled_velocity").data, _partial_=True,
                    _convert_="all")(sim_cfg=physics_config(cfg))

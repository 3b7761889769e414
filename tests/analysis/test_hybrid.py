"""The hybrid detector's inputs (``lensml.analysis.hybrid``): residuals about a fitted smooth model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lensml.analysis.hybrid import fitted_residuals, fitted_smooth_maps
from lensml.data.oracle import smooth_residuals
from lensml.errors import ConfigError
from lensml.inference.fit_model import fit_scene
from tests.inference.conftest import make_sim

CLEAN = ["instrument.n_pix=16", "instrument.pixel_scale_arcsec=0.2", "source.n_clumps=0", "source.p_bulge=0",
         "lens.multipoles.orders=[]"]


def test_a_fit_at_the_truth_gives_the_production_smooth_model_and_its_residuals() -> None:
    """With the fit's parameters at the true smooth values, the fitted maps are the production renderer's
    smooth model up to the production source grid's interpolation error (the fitter evaluates the disk at the
    traced positions: percent level, ``test_analytic_source_mode_close_to_grid``), and the residuals are in
    the oracle's units (close to the oracle residuals), velocity only inside both masks of a flux + velocity
    fit; fits that started at the truth are refused."""
    sim = make_sim(CLEAN, mass_bin=1e11)
    idx = np.arange(2)
    draws = sim.draw_batch(0, "test", idx)
    smooth = sim.render_noiseless(dataclasses.replace(draws, present=np.zeros(2, bool)), "test")
    fits, maps = [], []
    for k in range(2):
        scene, truth = fit_scene(sim, draws, k)
        fits.append({"index": int(idx[k]), "dataset": "flux_velocity",
                     "smooth_theta": dict(zip(scene.names, truth.tolist()))})
        f0, v0 = fitted_smooth_maps(sim, draws, k, fits[k])
        peak = smooth["flux"][k].max()
        assert np.abs(f0 - smooth["flux"][k]).max() < 3e-2 * peak
        arc = smooth["flux"][k] > 0.05 * peak
        assert np.abs(v0 - smooth["velocity"][k])[arc].max() < 5.0  # km/s
        maps.append(f0)
    res = fitted_residuals(sim, 0, fits)
    data = sim.sample_batch(0, "test", list(idx))
    oracle = smooth_residuals(sim, 0, "test", idx)
    assert np.array_equal(res["flux"], data["flux"])
    r = np.corrcoef(res["flux_resid_z"].ravel(), oracle["flux_resid_z"].ravel())[0, 1]
    assert r > 0.9, r  # the same units as the oracle's; only the smooth model's rendering differs
    assert np.corrcoef((data["flux"] - np.stack(maps)).ravel(), res["flux_resid_z"].ravel())[0, 1] > 0.99
    assert res["resid_mask"].any() and not res["velocity_resid_z"][~res["resid_mask"]].any()
    flux_only = fitted_residuals(sim, 0, [{**f, "dataset": "flux"} for f in fits])
    assert not flux_only["resid_mask"].any() and not flux_only["velocity_resid_z"].any()
    assert np.array_equal(flux_only["flux_resid_z"], res["flux_resid_z"])
    with pytest.raises(ConfigError, match="fit.start=grid"):
        fitted_residuals(sim, 0, [{**fits[0], "smooth": {"start": "oracle"}}])

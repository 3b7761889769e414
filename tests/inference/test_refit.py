"""The nonlinear refit: zero on smooth data, and equal to the linearised significance for a small subhalo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lensml.inference import physics
from lensml.inference.forecast_draw import Settings, draw_significance, smooth_model
from lensml.inference.refit import refit_significance
from lensml.inference.renderer import DTYPE, nuisance_names, render
from tests.inference.conftest import make_sim


def test_refit_agrees_with_the_linearisation_for_a_small_subhalo() -> None:
    sim = make_sim(["instrument.n_pix=24", "instrument.pixel_scale_arcsec=0.133"], mass_bin=1e9)
    draws = sim.draw_batch(0, "test", np.arange(4))
    i = int(np.flatnonzero(draws.source.disk["bulge_amp"] == 0)[0])  # a cuspy bulge is far from linear
    draws = draws.take(np.array([i]))
    st = Settings({"macro": ["macro"]}, [10.0], source_mode="analytic")
    model = smooth_model(sim, draws, 0, st)
    lin = float(draw_significance([sim], [draws], 0, st, model)["flux"]["macro"][0])
    scene, theta = model["scene"], model["theta"]
    s_f, _ = physics.noise_sigmas(sim, model["f0"], draws, 0, 10.0)
    free = nuisance_names(scene, ["macro"])
    smooth = refit_significance(scene, theta, free, model["f0"], None, s_f, None, None, 5)
    assert smooth["nonlinear_sigma"] < 1e-6  # the smooth data are fitted exactly
    with torch.no_grad():
        f1, _ = render(scene, torch.as_tensor(theta, dtype=DTYPE))
    res = refit_significance(scene, theta, free, f1.numpy(), None, s_f, None, None, 20)
    assert res["nonlinear_sigma"] == pytest.approx(lin, rel=0.1)
    assert res["nonlinear_sigma"] < res["start_sigma"]

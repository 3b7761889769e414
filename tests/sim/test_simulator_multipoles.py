"""Lens multipoles in the simulator: drawn from their own stream (same prior in both classes), rendered by the
kernels as by lenstronomy."""

from __future__ import annotations

import numpy as np

from lensml.sim.simulator import build_simulator
from tests.sim.test_simulator import SMALL, physics_cfg

MULTI = ["lens.multipoles.orders=[3,4]", "lens.multipoles.amplitude_frac.high=0.02"]


def test_multipole_draws_do_not_depend_on_the_label():
    """The label stream (subhalo presence) leaves the multipoles of every sample unchanged."""
    sims = [build_simulator(physics_cfg(*SMALL, *MULTI, f"subhalo.p_present={p}")) for p in (0.0, 1.0)]
    draws = [sim.draw_batch(5, "train", range(40)) for sim in sims]
    assert not draws[0].present.any() and draws[1].present.all()
    for key in ("multipole_a_3", "multipole_phi_3", "multipole_a_4", "multipole_phi_4"):
        np.testing.assert_array_equal(draws[0].lens[key], draws[1].lens[key])
    a = draws[0].lens["multipole_a_4"] / draws[0].lens["theta_E"]
    assert 0.0 <= a.min() and a.max() <= 0.02 and a.std() > 0


def test_kernels_render_multipoles_as_lenstronomy():
    sim = build_simulator(physics_cfg(*SMALL, *MULTI))
    ref = build_simulator(physics_cfg(*SMALL, *MULTI, "sim=lenstronomy"))
    assert sim.lens_model_list[2:4] == ["MULTIPOLE", "MULTIPOLE"]
    draws = sim.draw_batch(2, "train", range(3))
    got = sim.render_noiseless(draws, "train")["flux"]
    want = ref.render_noiseless(draws, "train")["flux"]
    np.testing.assert_allclose(got, want, atol=2e-3 * want.max())
    off = build_simulator(physics_cfg(*SMALL)).render_noiseless(draws, "train")["flux"]
    assert np.abs(off - got).max() > 10 * np.abs(got - want).max()  # the multipoles are seen

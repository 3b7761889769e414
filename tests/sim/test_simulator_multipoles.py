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
    assert sim.lens_model_list[3:] == ["MULTIPOLE", "MULTIPOLE"]
    draws = sim.draw_batch(2, "train", range(3))
    got = sim.render_noiseless(draws, "train")["flux"]
    want = ref.render_noiseless(draws, "train")["flux"]
    np.testing.assert_allclose(got, want, atol=2e-3 * want.max())
    plain = build_simulator(physics_cfg(*SMALL, "lens.multipoles.orders=[]"))
    off = plain.render_noiseless(draws, "train")["flux"]
    assert np.abs(off - got).max() > 10 * np.abs(got - want).max()  # the multipoles are seen


def test_nuisance_draws_are_independent_of_the_label_stream():
    """Hard negatives (multipoles, source clumps with their velocities) are drawn the same whatever the label:
    changing the label's prior (p_present 0 -> 1) changes no nuisance parameter of any sample, and by default
    both classes get them."""
    sims = [build_simulator(physics_cfg(*SMALL, f"subhalo.p_present={p}")) for p in (0.0, 1.0)]
    a, b = (sim.draw_batch(11, "train", range(60)) for sim in sims)
    assert sims[0].multipoles.orders == (3, 4)
    for key in ("multipole_a_3", "multipole_phi_3", "multipole_a_4", "multipole_phi_4", "theta_E", "e1"):
        np.testing.assert_array_equal(a.lens[key], b.lens[key])
    for key in ("clump_amp", "clump_sigma_arcsec", "clump_dv_kms", "clump_r_arcsec"):
        np.testing.assert_array_equal(a.source.disk[key], b.source.disk[key])
    n_clumps = (a.source.disk["clump_amp"] > 0).sum(1)
    assert n_clumps.min() == 0 and n_clumps.max() <= 6 and n_clumps.max() >= 4
    dv = np.abs(a.source.disk["clump_dv_kms"][a.source.disk["clump_amp"] > 0])
    assert 30.0 <= dv.min() and dv.max() <= 80.0
    sigma = a.source.disk["clump_sigma_arcsec"][a.source.disk["clump_amp"] > 0]
    assert 0.01 <= sigma.min() and sigma.max() <= 0.04

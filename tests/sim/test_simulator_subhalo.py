"""The simulator's subhalo options: line-of-sight depth draw, tidal truncation, concentration, metadata."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lensml.errors import ConfigError
from lensml.numerics.philox import uniforms
from lensml.sim import subhalo_tidal as tidal
from lensml.sim.cosmology import lens_distances
from lensml.sim.simulator import SUBHALO_METADATA_KEYS, build_simulator, stream_tag, subhalo_depth_slot
from lensml.sim.subhalo import MASS_KEYS, subhalo_masses, subhalo_structure
from tests.sim.test_simulator import SMALL, physics_cfg

ON_ARC = ["subhalo.placement.on_arc=true", "subhalo.placement.n_candidates=8"]
INDICES = [0, 1, 2, 5, 11]
# draws of (seed 7, split test, INDICES) by the code before the depth slot existed (samples version 3)
PINNED = {
    "mass": [
        1019714812.0162271, 2339759345.5602665, 68732339.58837558, 159609375.43974912, 3661775241.3315363,
    ],
    "off": (
        [0.9456272767857711, 0.588116824624827, -0.6389600942452435, -0.4467964619907921,
         0.0065107184033440305],
        [-0.09255931972278478, 0.5522139805657188, 0.6545196994847805, -1.0161192396881293,
         0.9196324273538022],
    ),
    "on": (
        [0.8504382750677751, 0.2182581980285404, -0.8407537073033197, -0.9542948585148487,
         -0.5772801725573226],
        [0.5596798910755134, -1.1222240579467515, -0.4680303557718136, -0.25919925705066743,
         0.49009067830241526],
    ),
}


@pytest.mark.parametrize("placement", ["off", "on"])
def test_depth_slot_leaves_the_other_draws_unchanged(placement: str) -> None:
    sim = build_simulator(physics_cfg(*SMALL, *(ON_ARC if placement == "on" else [])))
    d = sim.draw_batch(7, "test", INDICES)
    assert d.present.tolist() == [True, False, False, False, False]
    np.testing.assert_array_equal(d.mass_msun, PINNED["mass"])
    np.testing.assert_array_equal(d.sub_x, PINNED[placement][0])
    np.testing.assert_array_equal(d.sub_y, PINNED[placement][1])


@pytest.mark.parametrize("placement", ["off", "on"])
def test_depth_draw_is_deterministic_and_follows_its_prior(placement: str) -> None:
    extra = ON_ARC if placement == "on" else []
    sim = build_simulator(physics_cfg(*SMALL, *extra, "subhalo.depth.prior=uniform"))
    idx = list(range(40))
    d = sim.draw_batch(3, "train", idx)
    again = sim.draw_batch(3, "train", idx[::-1])
    np.testing.assert_array_equal(d.sub_z_kpc, again.sub_z_kpc[::-1])
    assert sim.draw_batch(3, "train", [17]).sub_z_kpc[0] == d.sub_z_kpc[17]
    assert not np.array_equal(d.sub_z_kpc, sim.draw_batch(4, "train", idx).sub_z_kpc)
    # the uniform of the depth slot, mapped by the uniform-sphere prior inside the host's r200
    n_cand = 8 if placement == "on" else 0
    u = uniforms(3, stream_tag("train", "subhalo"), np.array(idx), subhalo_depth_slot(n_cand) + 1)
    dist = lens_distances(sim.z_lens, sim.z_source, sim.cosmology)
    r200 = tidal.host_r200_kpc(tidal.host_sigma_v_kms(d.lens["theta_E"], dist), dist)
    r_proj = np.hypot(d.sub_x - d.lens["center_x"], d.sub_y - d.lens["center_y"]) * tidal.kpc_per_arcsec(dist)
    z_max = np.sqrt(r200**2 - r_proj**2)
    np.testing.assert_allclose(d.sub_z_kpc, z_max * (2 * u[:, subhalo_depth_slot(n_cand)] - 1), rtol=1e-12)
    # the isothermal prior puts subhaloes closer to the lens plane; same uniforms
    iso_sim = build_simulator(physics_cfg(*SMALL, *extra, "subhalo.depth.prior=isothermal"))
    iso = iso_sim.draw_batch(3, "train", idx)
    assert np.all(np.abs(iso.sub_z_kpc) <= np.abs(d.sub_z_kpc) + 1e-9)
    assert np.all(np.sign(iso.sub_z_kpc) == np.sign(d.sub_z_kpc))


def test_sample_metadata_matches_the_rendered_subhalo() -> None:
    sim = build_simulator(physics_cfg(*SMALL, "subhalo.p_present=0.7"))
    assert (sim.subhalo.concentration, sim.subhalo.truncation) == ("moline17", "tidal")  # the defaults
    out = sim.sample_batch(5, "val", range(10))
    assert set(SUBHALO_METADATA_KEYS) == set(MASS_KEYS) <= set(out)
    for key in SUBHALO_METADATA_KEYS:
        assert out[key].dtype == np.float64 and out[key].shape == (10,)
    pos, neg = out["label"] == 1, out["label"] == 0
    assert pos.any() and neg.any()
    for key in ("m_trunc_msun", "m_proj_1kpc_msun", "m_proj_0p1arcsec_msun"):
        assert np.all(out[key][neg] == 0) and np.all(out[key][pos] > 0)
        assert np.all(out[key][pos] < out["mass_msun"][pos])  # stripped / projected: below M200
    assert np.all(np.isnan(out["tau_trunc"][neg])) and np.all(np.isnan(out["c200"][neg]))
    # the lens kwargs carry the same tau and c as the metadata (one computation for both)
    draws = sim.draw_batch(5, "val", range(10))
    kw = sim.lens_kwargs(draws)[2]
    np.testing.assert_allclose(kw["r_trunc"][pos] / kw["Rs"][pos], out["tau_trunc"][pos], rtol=1e-12)
    # and they follow from the drawn 3D position, computed here from scratch
    dist = lens_distances(sim.z_lens, sim.z_source, sim.cosmology)
    r_proj = np.hypot(draws.sub_x - draws.lens["center_x"], draws.sub_y - draws.lens["center_y"])
    r3d = np.hypot(r_proj * tidal.kpc_per_arcsec(dist), draws.sub_z_kpc)
    st = subhalo_structure(
        "TNFW", draws.mass_msun, dist, "moline17", "tidal", r3d_kpc=r3d, host_theta_e=draws.lens["theta_E"]
    )
    np.testing.assert_allclose(out["tau_trunc"][pos], st.tau[pos], rtol=1e-12)
    np.testing.assert_allclose(out["c200"][pos], st.c200[pos], rtol=1e-12)
    ref = subhalo_masses(
        "TNFW", out["mass_msun"], sim.z_lens, sim.z_source, concentration="moline17", truncation="tidal",
        r3d_kpc=r3d, host_theta_e=draws.lens["theta_E"],
    )
    for key in MASS_KEYS:
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-12)


def test_fixed_truncation_preset_is_the_old_subhalo() -> None:
    sim = build_simulator(physics_cfg(*SMALL, "subhalo=tnfw_fixed", "subhalo.p_present=1"))
    out = sim.sample_batch(0, "train", range(4))
    assert np.all(out["tau_trunc"] == 5.0)
    h = lens_distances(sim.z_lens, sim.z_source, sim.cosmology).h
    duffy = 5.71 * (out["mass_msun"] * h / 2e12) ** -0.084 * (1 + sim.z_lens) ** -0.47
    np.testing.assert_allclose(out["c200"], duffy, rtol=1e-12)


@pytest.mark.parametrize(
    "override, key",
    [
        ("subhalo.truncation=king", "subhalo.truncation"),
        ("subhalo.concentration=ludlow16", "subhalo.concentration"),
        ("subhalo.concentration=-2", "subhalo.concentration"),
        ("subhalo.depth.prior=nfw", "subhalo.depth.prior"),
        ("subhalo.depth.r_max_r200=0", "subhalo.depth.r_max_r200"),
        ("subhalo.tau_trunc=0", "subhalo.tau_trunc"),
    ],
)
def test_bad_subhalo_options_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_simulator(physics_cfg(*SMALL, override))


def test_depth_is_zero_for_hand_made_draws() -> None:
    """Draws built from single ``_Draw``s without a depth put the subhalo in the lens plane (r3D = R)."""
    sim = build_simulator(physics_cfg(*SMALL))
    batch = sim.draw_batch(0, "train", [0, 1])
    one = batch.one(0)
    assert one.sub_z_kpc == batch.sub_z_kpc[0]
    from lensml.sim.simulator import DrawBatch, _Draw

    plain = _Draw(one.lens, one.source, True, 1e9, one.sub_x, one.sub_y)
    assert DrawBatch.from_draws([plain]).sub_z_kpc.tolist() == [0.0]
    assert math.isfinite(float(sim.lens_kwargs([plain])[2]["r_trunc"][0]))

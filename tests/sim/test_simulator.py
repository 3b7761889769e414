"""The simulator contract (lensml.sim.simulator): outputs, determinism, priors, config validation."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from lensml.errors import ConfigError, DataError
from lensml.paths import CONF_DIR
from lensml.sim.simulator import SAMPLE_KEYS, DrawBatch, build_simulator

SMALL = ["instrument.n_pix=32", "instrument.pixel_scale_arcsec=0.1", "source.grid_npix=48"]


def physics_cfg(*overrides: str):
    """The physics groups composed with Hydra exactly as the CLIs do (conf/preview.yaml defaults)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("preview", overrides=list(overrides))


def _render_sample(overrides: list[str], seed: int, split: str, index: int) -> dict:
    return build_simulator(physics_cfg(*overrides)).sample_batch(seed, split, [index])


def test_sample_batch_contract():
    sim = build_simulator(physics_cfg(*SMALL))
    out = sim.sample_batch(3, "val", [0, 1, 2, 3, 4, 5])
    assert set(out) == set(SAMPLE_KEYS)
    n = 32
    assert out["flux"].dtype == np.float32 and out["flux"].shape == (6, n, n)
    assert out["velocity"].dtype == np.float32 and out["velocity"].shape == (6, n, n)
    assert out["mask"].dtype == bool and out["mask"].shape == (6, n, n)
    assert out["label"].dtype == np.int64 and set(np.unique(out["label"])) <= {0, 1}
    for key in ("mass_msun", "sub_x_arcsec", "sub_y_arcsec"):
        assert out[key].dtype == np.float64 and out[key].shape == (6,)
    pos, neg = out["label"] == 1, out["label"] == 0
    assert np.all(out["mass_msun"][neg] == 0) and np.all(np.isnan(out["sub_x_arcsec"][neg]))
    assert np.all((out["mass_msun"][pos] >= 1e7) & (out["mass_msun"][pos] <= 1e10))
    assert list(out["source_id"]) == ["disk"] * 6
    for key in ("sigma_v_kms", "flux_sigma"):
        assert out[key].dtype == np.float32 and out[key].shape == (6, n, n)
        assert np.all(np.isfinite(out[key])) and np.all(out[key] >= 0)
    assert out["peak_snr"].dtype == np.float64 and out["peak_snr"].shape == (6,)
    assert np.all((out["peak_snr"] >= 15) & (out["peak_snr"] <= 45))  # conf/noise/nominal.yaml
    assert np.all(out["velocity"][~out["mask"]] == 0)
    assert 0.02 < out["mask"].mean() < 0.9
    assert sim.n_pix == 32 and sim.pixel_scale_arcsec == 0.1


def test_subhalo_is_placed_in_the_band_around_theta_e():
    sim = build_simulator(
        physics_cfg(*SMALL, "subhalo.p_present=1.0", "subhalo.placement.band_arcsec=0.1")
    )
    out = sim.sample_batch(0, "train", range(12))
    draws = [sim.draw(0, "train", i)[0] for i in range(12)]
    r = np.hypot(
        out["sub_x_arcsec"] - [d.lens["center_x"] for d in draws],
        out["sub_y_arcsec"] - [d.lens["center_y"] for d in draws],
    )
    theta_e = np.array([d.lens["theta_E"] for d in draws])
    assert np.all(out["label"] == 1)
    assert np.all(np.abs(r - theta_e) <= 0.1 + 1e-12)


def test_on_arc_placement_lands_on_bright_pixels():
    base = [*SMALL, "subhalo.p_present=1.0", "noise.peak_snr=null", "noise.background_sigma_frac=0"]
    on = build_simulator(physics_cfg(*base, "subhalo.placement.on_arc=true"))
    off = build_simulator(physics_cfg(*base))

    def flux_at_subhalo(sim) -> float:
        out = sim.sample_batch(1, "train", range(16))
        j = np.clip(np.round(out["sub_x_arcsec"] / 0.1 + 15.5).astype(int), 0, 31)
        i = np.clip(np.round(out["sub_y_arcsec"] / 0.1 + 15.5).astype(int), 0, 31)
        peak = out["flux"].max(axis=(1, 2))
        return float(np.mean(out["flux"][np.arange(16), i, j] / peak))

    assert flux_at_subhalo(on) > flux_at_subhalo(off) + 0.1


@pytest.mark.parametrize("lens", ["sie", "epl"])
def test_sample_is_independent_of_batch_composition(lens):
    sim = build_simulator(physics_cfg(*SMALL, f"lens={lens}"))
    full = sim.sample_batch(7, "train", range(19))
    sim.chunk_size = 19
    one_chunk = sim.sample_batch(7, "train", range(19))
    sim.chunk_size = 3
    for i in (0, 6, 13, 18):
        alone = sim.sample_batch(7, "train", [i])
        mixed = sim.sample_batch(7, "train", [30, i, 2, 5])
        for key in SAMPLE_KEYS:
            np.testing.assert_array_equal(full[key][i : i + 1], alone[key])
            np.testing.assert_array_equal(mixed[key][1:2], alone[key])
            np.testing.assert_array_equal(one_chunk[key][i : i + 1], alone[key])
    assert 0 < full["label"].sum() < 19
    other_seed = sim.sample_batch(8, "train", [6])
    other_split = sim.sample_batch(7, "test", [6])
    assert not np.array_equal(other_seed["flux"], full["flux"][6:7])
    assert not np.array_equal(other_split["flux"], full["flux"][6:7])


def test_sample_is_identical_in_a_spawned_process():
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        remote = pool.apply(_render_sample, (SMALL, 5, "val", 9))
    local = build_simulator(physics_cfg(*SMALL)).sample_batch(5, "val", [0, 9])
    for key in SAMPLE_KEYS:
        np.testing.assert_array_equal(remote[key], local[key][1:2])


def test_backends_agree_through_the_simulator():
    over = [*SMALL, "lens=epl", "source.n_clumps=2", "subhalo.p_present=0.5"]
    torch_sim = build_simulator(physics_cfg(*over))
    ref_sim = build_simulator(physics_cfg(*over, "sim=lenstronomy"))
    draws = [torch_sim.draw(2, "test", i)[0] for i in range(6)]
    assert any(d.present for d in draws) and not all(d.present for d in draws)
    a = torch_sim.render_noiseless(draws, "test")
    b = ref_sim.render_noiseless(draws, "test")
    peak = b["flux"].max(axis=(1, 2), keepdims=True)
    assert np.all(np.abs(a["flux"] - b["flux"]) <= 1e-4 * peak)
    both = a["mask"] & b["mask"]
    assert np.abs(a["velocity"] - b["velocity"])[both].max() <= 1e-4 * np.abs(b["velocity"]).max()


def test_negatives_share_the_priors_of_positives():
    sim = build_simulator(physics_cfg(*SMALL))
    draws = [sim.draw(0, "train", i)[0] for i in range(400)]
    present = np.array([d.present for d in draws])
    assert 150 < present.sum() < 250
    # the presence draw comes after the lens and source draws: forcing it changes nothing else
    forced = build_simulator(physics_cfg(*SMALL, "subhalo.p_present=1.0"))
    for i in range(5):
        d0, d1 = sim.draw(0, "train", i)[0], forced.draw(0, "train", i)[0]
        assert d0.lens == d1.lens and d0.mass_msun == d1.mass_msun and d0.sub_x == d1.sub_x
        assert d0.source.params.keys() == d1.source.params.keys()
        assert all(np.array_equal(d0.source.params[k], d1.source.params[k]) for k in d0.source.params)
    theta_pos = np.mean([d.lens["theta_E"] for d, p in zip(draws, present) if p])
    theta_neg = np.mean([d.lens["theta_E"] for d, p in zip(draws, present) if not p])
    assert abs(theta_pos - theta_neg) < 0.03  # uniform(0.9, 1.1): sd of the mean ~0.004


def test_zero_mass_subhalo_renders_like_no_subhalo():
    sim = build_simulator(physics_cfg(*SMALL, "subhalo.p_present=1.0"))
    d = sim.draw(0, "train", 3)[0]
    zero = dataclasses.replace(d, mass_msun=0.0)
    absent = dataclasses.replace(d, present=False)
    a, b = sim.render_noiseless([zero], "train"), sim.render_noiseless([absent], "train")
    for key in ("flux", "velocity", "mask"):
        np.testing.assert_array_equal(a[key], b[key])


def test_mass_bin_sets_the_mass_range():
    sim = build_simulator(physics_cfg(*SMALL, "subhalo.mass_bin=1e8", "subhalo.p_present=1.0"))
    masses = np.array([sim.draw(0, "train", i)[0].mass_msun for i in range(50)])
    assert masses.min() >= 1e8 * 10**-0.5 and masses.max() <= 1e8 * 10**0.5
    assert np.log10(masses).std() > 0.2


def test_split_overrides_shift_the_prior():
    sim = build_simulator(
        physics_cfg(
            *SMALL, "+source.split_overrides.test.inclination_deg={dist: uniform, low: 80, high: 84}"
        )
    )
    train = [sim.draw(0, "train", i)[0].source.params["inclination_deg"] for i in range(20)]
    test = [sim.draw(0, "test", i)[0].source.params["inclination_deg"] for i in range(20)]
    assert max(train) <= 70 and min(test) >= 80


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("subhalo.mass_bin=-1e8", "subhalo.mass_bin"),
        ("subhalo.mass_range_msun=[-1e7,1e9]", "subhalo.mass_range_msun"),
        ("lens.theta_E=0", "lens.theta_E"),
        ("lens.theta_E={dist: uniform, low: -0.1, high: 1.0}", "lens.theta_E"),
        ("lens.q=1.5", "lens.q"),
        ("lens.q=0", "lens.q"),
        ("lens.z_source=0.4", "lens.z_source"),
        ("subhalo.profile=PJAFFE", "subhalo.profile"),
        ("lens.model=NIE", "lens.model"),
        ("instrument.pixel_scale_arcsec=0", "instrument.pixel_scale_arcsec"),
        ("instrument.velocity_grid=30", "instrument.velocity_grid"),
        ("noise.peak_snr=-5", "noise.peak_snr"),
        ("noise.mask_frac_of_peak=1.5", "noise.mask_frac_of_peak"),
        ("noise.mask_from=sometimes", "noise.mask_from"),
        ("source.scale_radius_arcsec={dist: uniform, low: 0, high: 0.2}", "source.scale_radius_arcsec"),
        ("source.inclination_deg.dist=gamma", "source.inclination_deg.dist"),
        ("sim.backend=jax", "sim.backend"),
        ("sim.cpu_kernels=sometimes", "sim.cpu_kernels"),
        ("lens.cosmology=Nonsense18", "lens.cosmology"),
    ],
)
def test_impossible_values_are_refused_at_build_time(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_simulator(physics_cfg(*SMALL, override))


def test_manga_source_without_templates_says_how_to_make_them(tmp_path):
    with pytest.raises(DataError, match="prepare_sources"):
        build_simulator(physics_cfg(*SMALL[:2], "source=manga", f"source.template_dir={tmp_path}"))


@pytest.mark.parametrize(
    "preset",
    [
        "lens=epl",
        "subhalo=sis",
        "subhalo=nfw",
        "noise=low_snr",
        "noise=high_snr",
        "instrument=manga lens.z_source=1.0",
        "instrument=muse lens.z_source=1.0",
        "instrument=jwst_nirspec",
        "sim=lenstronomy",
        "instrument.velocity_grid=32",
    ],
)
def test_every_preset_builds_and_renders(preset):
    sim = build_simulator(physics_cfg("source.grid_npix=48", "subhalo.p_present=1.0", *preset.split()))
    out = sim.sample_batch(0, "train", [0, 1])
    n = sim.n_pix
    assert out["flux"].shape == (2, n, n) and np.isfinite(out["flux"]).all()
    assert np.isfinite(out["velocity"]).all() and out["mask"].any()


@pytest.mark.parametrize("mode", ["observed", "noiseless"])
def test_returned_mask_is_the_velocity_support(mode):
    from lensml.sim.instrument import observed_mask

    sim = build_simulator(physics_cfg(f"noise.mask_from={mode}"))
    b = sim.sample_batch(0, "train", range(6))
    np.testing.assert_array_equal(b["velocity"] != 0, b["mask"])  # velocity noise is continuous: no exact 0
    if mode == "observed":  # recomputed from the observed flux alone (and the drawn peak S/N)
        nz = sim.noise
        again = observed_mask(
            b["flux"], nz.mask_frac_of_peak, nz.mask_min_snr, b["peak_snr"], nz.background_sigma_frac
        )
        np.testing.assert_array_equal(b["mask"], again)
    else:
        clean = sim.render_noiseless([sim.draw(0, "train", i)[0] for i in range(6)], "train")
        np.testing.assert_array_equal(b["mask"], clean["mask"])


@pytest.mark.parametrize("cpu_kernels", [True, False], ids=["compiled", "torch-ops"])
def test_sample_is_bit_identical_across_batch_sizes_and_thread_counts(cpu_kernels):
    """An odd grid (rays per sample not a multiple of the SIMD block) and 1 vs 2 torch threads."""
    import torch

    over = ["instrument.n_pix=30", "instrument.pixel_scale_arcsec=0.1", "source.grid_npix=48"]
    sim = build_simulator(physics_cfg(*over, "subhalo.p_present=0.5", f"sim.cpu_kernels={cpu_kernels}"))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        sim.chunk_size = 11  # 11 x 68^2 rays: above torch's grain size, so both threads split each op
        batch = sim.sample_batch(3, "train", range(11))
        sim.chunk_size = 7
        batch7 = sim.sample_batch(3, "train", range(11))
        torch.set_num_threads(1)
        for i in (0, 5, 6, 10):
            alone = sim.sample_batch(3, "train", [i])
            for key in ("flux", "velocity", "mask"):
                np.testing.assert_array_equal(batch[key][i : i + 1], alone[key])
                np.testing.assert_array_equal(batch7[key][i : i + 1], alone[key])
    finally:
        torch.set_num_threads(threads)
    assert 0 < batch["label"].sum() < 11


@pytest.mark.parametrize("on_arc", [False, True])
def test_batched_draws_equal_single_draws_and_round_trip(on_arc):
    sim = build_simulator(physics_cfg(*SMALL, f"subhalo.placement.on_arc={str(on_arc).lower()}"))
    batch = sim.draw_batch(4, "val", [9, 2, 31])
    for pos, index in enumerate([9, 2, 31]):
        single, key = sim.draw(4, "val", index)
        one = batch.one(pos)
        assert key == batch.noise_key[pos] and single.lens == one.lens
        assert (single.present, single.mass_msun, single.sub_x, single.sub_y) == (
            one.present,
            one.mass_msun,
            one.sub_x,
            one.sub_y,
        )
        assert all(np.array_equal(single.source.params[k], v) for k, v in one.source.params.items())
    again = DrawBatch.from_draws([batch.one(i) for i in range(3)])
    for name in ("present", "mass_msun", "sub_x", "sub_y"):
        np.testing.assert_array_equal(getattr(again, name), getattr(batch, name))
    flux = sim.render_noiseless(batch, "val")["flux"]
    np.testing.assert_array_equal(sim.render_noiseless(again, "val")["flux"], flux)


def test_changing_one_prior_leaves_the_other_draws_of_a_sample_unchanged():
    """Every quantity has its own uniform: paired comparisons across configs share lenses and sources."""
    a = build_simulator(physics_cfg(*SMALL)).draw_batch(0, "train", range(20))
    b = build_simulator(
        physics_cfg(*SMALL, "lens.theta_E={dist: uniform, low: 1.2, high: 1.4}", "source.n_clumps=0")
    ).draw_batch(0, "train", range(20))
    assert np.all(b.lens["theta_E"] >= 1.2) and not np.any(a.lens["theta_E"] >= 1.2)
    for name in ("e1", "e2", "gamma1", "gamma2", "center_x", "center_y"):
        np.testing.assert_array_equal(a.lens[name], b.lens[name])
    for name in ("inclination_deg", "position_angle_deg", "v_max_kms", "bulge_amp"):
        np.testing.assert_array_equal(a.source.disk[name], b.source.disk[name])
    np.testing.assert_array_equal(a.present, b.present)
    np.testing.assert_array_equal(a.mass_msun, b.mass_msun)
    np.testing.assert_array_equal(a.noise_key, b.noise_key)
    assert not np.any(b.source.disk["clump_amp"]) and np.any(a.source.disk["clump_amp"])


def test_line_outside_the_instrument_coverage_is_refused():
    """MUSE sees 0.465-0.93 um: H-alpha of a z = 2 source (1.97 um) is impossible; the message names keys."""
    keys = r"lens\.z_source=2.*instrument\.line='H-alpha'.*instrument\.name='muse'"
    with pytest.raises(ConfigError, match=keys):
        build_simulator(physics_cfg(*SMALL, "instrument=muse", "instrument.line=H-alpha"))
    with pytest.raises(ConfigError, match=r"lens\.z_source.*instrument=jwst_nirspec"):
        build_simulator(physics_cfg(*SMALL, "instrument=muse"))  # its [OII] at z = 2: 1.12 um
    build_simulator(physics_cfg(*SMALL, "instrument=muse", "lens.z_source=1.0"))  # [OII] at 0.75 um
    with pytest.raises(ConfigError, match=r"instrument\.line"):
        build_simulator(physics_cfg(*SMALL, "instrument.line=Pa-beta"))


def test_removed_velocity_noise_key_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"noise\.sigma_v_kms.*noise\.sigma_v_floor_kms"):
        build_simulator(physics_cfg(*SMALL, "+noise.sigma_v_kms=10"))


def test_peak_snr_prior_draws_are_deterministic_and_leave_the_other_draws_unchanged():
    prior = "noise.peak_snr={dist: loguniform, low: 5, high: 100}"
    sim = build_simulator(physics_cfg(*SMALL, prior))
    batch = sim.draw_batch(7, "train", [3, 11, 12, 40])
    assert np.all((batch.peak_snr >= 5) & (batch.peak_snr <= 100)) and np.unique(batch.peak_snr).size == 4
    for pos, i in enumerate([3, 11, 12, 40]):  # a pure function of (seed, split, index)
        alone = sim.draw_batch(7, "train", [i])
        assert alone.peak_snr[0] == batch.peak_snr[pos]
        assert alone.sigma_line_kms[0] == batch.sigma_line_kms[pos]
    assert not np.array_equal(sim.draw_batch(7, "val", [3, 11]).peak_snr, batch.peak_snr[:2])
    assert not np.array_equal(sim.draw_batch(8, "train", [3, 11]).peak_snr, batch.peak_snr[:2])
    # another noise prior: every other draw of the samples is unchanged
    other = build_simulator(physics_cfg(*SMALL, "noise.peak_snr=30")).draw_batch(7, "train", [3, 11, 12, 40])
    assert np.all(other.peak_snr == 30.0)
    for k, v in batch.lens.items():
        np.testing.assert_array_equal(v, other.lens[k])
    for k, v in batch.source.disk.items():
        np.testing.assert_array_equal(v, other.source.disk[k])
    np.testing.assert_array_equal(batch.noise_key, other.noise_key)
    np.testing.assert_array_equal(batch.mass_msun, other.mass_msun)
    np.testing.assert_array_equal(batch.sub_x, other.sub_x)
    # the line width: the source's drawn dispersion and the instrument's resolving power in quadrature
    from lensml.sim.velocity_noise import line_sigma_kms

    np.testing.assert_allclose(
        batch.sigma_line_kms, line_sigma_kms(batch.source.disk["sigma0_kms"], sim.instrument.resolving_power)
    )


def test_reported_error_maps_come_from_observed_quantities_only():
    """sigma_v_kms / flux_sigma are a function of the observed flux and the drawn parameters: a map made from
    the noiseless flux would carry the noiseless isophote to the network."""
    from lensml.sim.instrument import reported_sigmas

    sim = build_simulator(physics_cfg(*SMALL))
    out = sim.sample_batch(2, "test", range(4))
    draws = sim.draw_batch(2, "test", range(4))
    s_v, s_f = reported_sigmas(out["flux"], sim.noise, draws.sigma_line_kms, out["peak_snr"])
    np.testing.assert_array_equal(out["sigma_v_kms"], s_v)
    np.testing.assert_array_equal(out["flux_sigma"], s_f)
    clean = sim.render_noiseless(draws, "test")
    from_clean = reported_sigmas(clean["flux"], sim.noise, draws.sigma_line_kms, out["peak_snr"])[0]
    assert not np.array_equal(from_clean, s_v)


@pytest.mark.parametrize("noise", ["nominal", "low_snr"])
def test_velocity_outside_the_noiseless_isophote_is_the_truth_plus_noise(noise):
    """Issue 10, the residual mask leak: pixels inside the observed mask but outside the noiseless 5 %
    isophote must carry v_true + noise (mean ~0 and spread = the model's sigma of (v_obs - v_true)), not
    0 + noise. v_true is the flux-weighted velocity rendered with no mask at all (mask_frac_of_peak=0)."""
    from lensml.sim.velocity_noise import velocity_sigma_kms

    # without the S/N cut the observed mask reaches well beyond the noiseless isophote: many pixels to test
    overrides = [*SMALL, f"noise={noise}", "noise.mask_min_snr=0.0"]
    sim = build_simulator(physics_cfg(*overrides))
    truth_sim = build_simulator(physics_cfg(*overrides, "noise.mask_frac_of_peak=0.0"))
    idx = range(24)
    out = sim.sample_batch(5, "train", idx)
    draws = sim.draw_batch(5, "train", idx)
    clean = sim.render_noiseless(draws, "train")
    v_true = truth_sim.render_noiseless(draws, "train")["velocity"]
    ring = out["mask"] & ~clean["mask"]  # observed, outside the noiseless isophote
    assert ring.sum() > 200
    peak = clean["flux"].max(axis=(1, 2))
    nz = sim.noise
    sigma = velocity_sigma_kms(
        clean["flux"], peak, draws.peak_snr, nz.background_sigma_frac, draws.sigma_line_kms, nz.kappa,
        nz.sigma_v_floor_kms, nz.sigma_v_max_kms,
    )
    z = ((out["velocity"] - v_true) / sigma)[ring]
    assert np.median(np.abs(v_true[ring])) > 20  # the truth there is far from 0
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert abs(np.sqrt(np.mean(z**2)) - 1.0) < 4 / np.sqrt(2 * z.size)

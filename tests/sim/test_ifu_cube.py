"""The IFU cube of the simulator (lensml.sim.cube, cube_noise): moments = the maps, cube off = unchanged,
voxel noise statistics, config keys."""

from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from lensml.data.cache import cache_config, config_hash
from lensml.errors import ConfigError
from lensml.paths import CONF_DIR
from lensml.sim.cube import channel_edges_kms, moment1_binning_bound_kms, moments, voxel_sigma
from lensml.sim.cube_noise import draw_cube_noise
from lensml.sim.simulator import SAMPLE_KEYS, build_simulator

SMALL = ["instrument.n_pix=32", "instrument.pixel_scale_arcsec=0.1", "source.grid_npix=48"]
#: 32 channels of 50 km/s over +-800 km/s: the line (sigma >= 45 km/s, |v| <= 380 km/s) is covered to
#: > 4.8 sigma and moment 1's binning error is < moment1_binning_bound_kms(50, 45) = 2e-6 km/s
FINE = ["instrument.n_velocity_channels=32", "instrument.velocity_range_kms=800"]


def physics_cfg(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("preview", overrides=list(overrides))


def test_channel_edges() -> None:
    np.testing.assert_allclose(channel_edges_kms(4, velocity_range_kms=100.0), [-100, -50, 0, 50, 100])
    np.testing.assert_allclose(channel_edges_kms(3, channel_width_kms=20.0), [-30, -10, 10, 30])
    assert moment1_binning_bound_kms(50.0, 45.0) < 1e-5


@pytest.mark.parametrize("cpu_kernels", [True, False], ids=["compiled", "torch-ops"])
def test_noiseless_cube_moments_are_the_flux_and_velocity_maps(cpu_kernels: bool) -> None:
    """Moment 0 = flux to 1e-5 of the peak, moment 1 = velocity to 0.01 km/s where f > 5 % of the peak
    (float32 rendering; the compiled path samples the flux in its kernel, the cube with grid_sample)."""
    sim = build_simulator(physics_cfg(*SMALL, *FINE, f"sim.cpu_kernels={str(cpu_kernels).lower()}"))
    draws = sim.draw_batch(0, "val", range(6))
    clean = sim.render_noiseless(draws, "val")
    cube, flux, vel = clean["cube"], clean["flux"], clean["velocity"]
    assert cube.shape == (6, 32, 32, 32) and cube.dtype == np.float32
    m0, m1 = moments(cube, sim.instrument.channel_edges_kms)
    peak = flux.reshape(6, -1).max(axis=1)[:, None, None]
    assert np.abs(m0 - flux).max(axis=(1, 2)).max() / peak.min() < 1e-5
    inside = flux > 0.05 * peak
    assert np.abs(m1 - vel)[inside].max() < 0.01


def test_cube_off_leaves_the_samples_and_the_cache_hash_unchanged() -> None:
    off = build_simulator(physics_cfg(*SMALL)).sample_batch(2, "train", range(5))
    on = build_simulator(physics_cfg(*SMALL, "instrument.n_velocity_channels=8")).sample_batch(
        2, "train", range(5)
    )
    assert set(off) == set(SAMPLE_KEYS) and set(on) == {*SAMPLE_KEYS, "cube"}
    for key in SAMPLE_KEYS:  # byte-identical: the cube's noise has its own streams
        assert np.asarray(off[key]).tobytes() == np.asarray(on[key]).tobytes(), key
    assert on["cube"].shape == (5, 8, 32, 32)
    cfg = physics_cfg(*SMALL)
    legacy = cache_config(cfg, 0)
    for key in ("n_velocity_channels", "channel_width_kms", "velocity_range_kms"):
        assert key not in legacy["instrument"]  # a cache made before the cube existed keeps its hash
    assert config_hash(cache_config(physics_cfg(*SMALL, "instrument.n_velocity_channels=8"), 0)) != (
        config_hash(legacy)
    )


def test_voxel_noise_has_the_voxel_sigma() -> None:
    """z = (noisy - clean) / voxel_sigma over 400 seeds: mean 0, variance 1 (Poisson + background)."""
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.0, 0.3, size=(1, 6, 8, 8)).astype(np.float32)
    clean[0, 0] = 0.0  # background only
    n = 400
    keys = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    args = (0.02, 50.0, np.full(n, 60.0), keys)
    noisy = draw_cube_noise(np.repeat(clean, n, 0), np.ones(n), np.full(n, 20.0), *args)
    z = (noisy - clean) / voxel_sigma(clean[0], 1.0, 20.0, 0.02, 50.0, 60.0)
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1) < 0.02
    assert abs(z[:, 0].var() - 1) < 0.05  # background part alone
    # a sample's noise is a function of its seed only (not of the batch it is drawn in)
    again = draw_cube_noise(clean, np.ones(1), np.full(1, 20.0), 0.02, 50.0, np.full(1, 60.0), keys[7:8])
    assert np.array_equal(again[0], noisy[7])


def test_voxel_counts_are_the_reference_poisson_draws_under_the_cube_key() -> None:
    """Background 0: each voxel is its exact Poisson count (``noise_draws.poisson_reference``, the maps'
    sampler) at the voxel's flat index under the key derived from the sample's seed."""
    from lensml.sim.cube_noise import cube_noise_key
    from lensml.sim.noise_draws import poisson_reference

    clean = np.random.default_rng(3).uniform(0.0, 0.5, size=(1, 3, 5, 5)).astype(np.float32)
    seed = np.uint64(2**63 + 12345)
    one = (np.ones(1), np.full(1, 10.0), 0.0, 50.0, np.full(1, 60.0), np.array([seed]))
    noisy = draw_cube_noise(clean, *one)
    k0, k1 = cube_noise_key(seed)
    key = np.uint64(int(k0) | (int(k1) << 32))
    lam = clean.reshape(-1).astype(np.float64) * 100.0
    want = [poisson_reference(m, key, p) / 100.0 for p, m in enumerate(lam)]
    np.testing.assert_allclose(noisy.reshape(-1), want, rtol=1e-6)


def test_simulated_cube_noise_follows_the_moment_maps_model() -> None:
    """The noisy cube minus the noiseless one, in units of voxel_sigma (the flux map's peak, the drawn
    peak S/N and line width): unit variance."""
    sim = build_simulator(physics_cfg(*SMALL, "instrument.n_velocity_channels=16"))
    draws = sim.draw_batch(1, "test", range(4))
    clean = sim.render_noiseless(draws, "test")
    noisy = sim.sample_batch(1, "test", range(4))["cube"]
    peak = clean["flux"].reshape(4, -1).max(axis=1)
    edges = sim.instrument.channel_edges_kms
    sig = voxel_sigma(
        clean["cube"], peak, draws.peak_snr, sim.noise.background_sigma_frac, edges[1] - edges[0],
        draws.sigma_line_kms,
    )
    z = (noisy - clean["cube"]) / sig
    assert abs(z.mean()) < 0.02 and abs(z.var() - 1) < 0.03


@pytest.mark.parametrize(
    ("override", "names"),
    [
        (["instrument.n_velocity_channels=-1"], ["instrument.n_velocity_channels"]),
        (["instrument.n_velocity_channels=2.5"], ["instrument.n_velocity_channels"]),
        (["instrument.n_velocity_channels=8", "instrument.channel_width_kms=50"],
         ["instrument.channel_width_kms", "instrument.velocity_range_kms"]),
        (["instrument.n_velocity_channels=8", "instrument.velocity_range_kms=0"],
         ["instrument.velocity_range_kms"]),
        (["+instrument.n_velocity_channel=8"], ["instrument.n_velocity_channel", "n_velocity_channels"]),
        (["instrument.n_velocity_channels=8", "sim=lenstronomy"], ["instrument.n_velocity_channels",
                                                                  "sim.backend"]),
    ],
)
def test_cube_keys_are_validated(override: list[str], names: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        build_simulator(physics_cfg(*SMALL, *override))
    for name in names:
        assert name in str(err.value)

"""Channel modes (lensml.data.channels): stacking, mask and weight channels, S/N flux, shuffled pairing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lensml.data.channels import (
    CHANNEL_LAYOUTS,
    CHANNEL_MODES,
    WEIGHT_MAX,
    InputNorm,
    check_streams,
    flux_snr,
    n_channels,
    needs_shuffle,
    normalise_flux,
    required_keys,
    stack_channels,
    stack_sample,
    two_stream_modes,
    velocity_weight,
)
from lensml.data.dataset import LensDataset
from lensml.errors import ConfigError
from lensml.sim.simulator import SAMPLE_KEYS

SEED_MODES = ("flux", "velocity", "flux_velocity", "flux_shuffled_velocity")
NEW_MODES = tuple(m for m in CHANNEL_MODES if m not in SEED_MODES)


def synthetic_samples(n: int, npix: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Simulator-like sample dict: a mask per sample, velocity 0 outside it, sigma_v and flux sigma > 0."""
    rng = np.random.default_rng(seed)
    flux = (rng.random((n, npix, npix)) * rng.uniform(1, 100, n)[:, None, None]).astype(np.float32)
    mask = rng.random((n, npix, npix)) < 0.5
    velocity = np.where(mask, rng.normal(0, 150, (n, npix, npix)), 0.0).astype(np.float32)
    per_sample = {k: np.zeros(n) for k in SAMPLE_KEYS}  # any further per-sample metadata of the simulator
    return per_sample | {
        "flux": flux,
        "velocity": velocity,
        "mask": mask,
        "sigma_v_kms": rng.uniform(3, 80, (n, npix, npix)).astype(np.float32),
        "flux_sigma": rng.uniform(0.1, 2.0, (n, npix, npix)).astype(np.float32),
        "label": (np.arange(n) % 2).astype(np.int64),
        "mass_msun": np.full(n, 1e9),
        "sub_x_arcsec": np.zeros(n),
        "sub_y_arcsec": np.zeros(n),
        "source_id": np.array([f"s{i}" for i in range(n)]),
    }


class MemorySource:
    """``SampleSource`` over an in-memory sample dict (row i = sample i of every split)."""

    def __init__(self, samples: dict[str, np.ndarray]) -> None:
        self.samples = samples

    def get(self, split, indices, n):
        return {k: v[np.asarray(indices)] for k, v in self.samples.items()}


def _seed_stack(mode: str, flux, vel, scale: float = 300.0, q: float = 0.995) -> np.ndarray:
    """The seed's ``stack_channels`` (before the new modes), for the unchanged-behaviour check."""
    parts = []
    if mode != "velocity":
        parts.append(normalise_flux(flux, q))
    if mode != "flux":
        parts.append((vel / np.float32(scale)).astype(np.float32))
    return np.stack(parts, axis=1)


@pytest.mark.parametrize("mode", SEED_MODES)
def test_seed_modes_are_unchanged(mode):
    s = synthetic_samples(4)
    x = stack_sample(mode, s, InputNorm())
    np.testing.assert_array_equal(x, _seed_stack(mode, s["flux"], s["velocity"]))
    # the positional call of the seed (flux, velocity only) still works
    np.testing.assert_array_equal(stack_channels(mode, s["flux"], s["velocity"], 300.0, 0.995), x)


def test_mask_mode_is_the_validity_mask_alone():
    """``data.channels=mask`` (the mask-only ablation): one 0/1 channel, the mask, nothing else read."""
    s = synthetic_samples(3)
    x = stack_sample("mask", {"mask": s["mask"]}, InputNorm())
    assert x.shape == (3, 1, 8, 8) and n_channels("mask") == 1 and required_keys("mask") == ("mask",)
    np.testing.assert_array_equal(x[:, 0], s["mask"].astype(np.float32))
    both = stack_sample("flux_mask", s, InputNorm())  # flux first, then the same mask
    np.testing.assert_array_equal(both[:, 1], x[:, 0])
    np.testing.assert_array_equal(both[:, 0], stack_sample("flux", s, InputNorm())[:, 0])


@pytest.mark.parametrize("mode", list(CHANNEL_MODES))
def test_every_mode_stacks_its_channels_in_order(mode):
    s = synthetic_samples(5, npix=12)
    x = stack_sample(mode, s, InputNorm(sigma_v_ref_kms=10.0))
    chans = CHANNEL_LAYOUTS[mode].channels
    assert x.shape == (5, CHANNEL_MODES[mode], 12, 12) and x.dtype == np.float32
    want = {
        "flux": normalise_flux(s["flux"]),
        "velocity": s["velocity"] / 300.0,
        "mask": s["mask"].astype(np.float32),
        "weight": np.where(s["mask"], (10.0 / s["sigma_v_kms"].astype(np.float64)) ** 2, 0.0),
    }
    for c, name in enumerate(chans):
        np.testing.assert_allclose(x[:, c], want[name], rtol=1e-6, err_msg=f"{mode} channel {c} ({name})")
    if "mask" in chans:  # the mask channel is the sample's mask, exactly
        assert np.array_equal(x[:, chans.index("mask")] == 1.0, s["mask"])
    if chans[0] == "flux":
        assert len(chans) == 1 or chans[1] in ("velocity", "mask")  # flux first, then the velocity side


def test_weight_is_zero_outside_the_mask_and_decreases_with_sigma_v():
    sigma = np.array([[1.0, 3.0, 10.0, 30.0, 100.0, np.inf, 0.0, 5.0]], np.float32)[:, None, :]
    mask = np.ones_like(sigma, dtype=bool)
    w = velocity_weight(sigma, mask, 10.0)[0, 0]
    np.testing.assert_allclose(w[1:5], [100 / 9, 1.0, 1 / 9, 0.01], rtol=1e-6)
    assert w[0] == WEIGHT_MAX and w[6] == WEIGHT_MAX and w[5] == 0.0  # capped / no information
    assert np.all(np.diff(w[:6]) <= 0) and np.all(np.diff(w[1:6]) < 0)  # monotone in sigma_v
    out = velocity_weight(sigma, ~mask, 10.0)
    assert np.all(out == 0.0)
    rng = np.random.default_rng(1)
    m = rng.random((3, 16, 16)) < 0.4
    w = velocity_weight(rng.uniform(2, 50, (3, 16, 16)), m, 10.0)
    assert np.all(w[~m] == 0.0) and np.all(w[m] > 0.0)


def test_flux_in_snr_units():
    s = synthetic_samples(3)
    norm = InputNorm(flux_norm="snr", flux_snr_scale=30.0)
    x = stack_sample("flux_velocity_weight", s, norm)
    np.testing.assert_allclose(x[:, 0], s["flux"] / s["flux_sigma"] / 30.0, rtol=1e-6)
    # the other channels do not depend on the flux option
    np.testing.assert_array_equal(x[:, 1:], stack_sample("flux_velocity_weight", s, InputNorm())[:, 1:])
    # S/N units keep the brightness difference between exposures that the per-image peak removes
    s2 = {**s, "flux": s["flux"] * 2}
    np.testing.assert_allclose(stack_sample("flux", s2, norm), 2 * stack_sample("flux", s, norm), rtol=1e-6)
    np.testing.assert_allclose(stack_sample("flux", s2, InputNorm()), stack_sample("flux", s, InputNorm()),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="flux_sigma"):
        flux_snr(s["flux"], np.zeros_like(s["flux"]), 30.0)
    with pytest.raises(ValueError, match="flux_sigma"):
        stack_sample("flux", {k: v for k, v in s.items() if k != "flux_sigma"}, norm)
    with pytest.raises(ValueError, match="sigma_v_kms"):
        stack_sample("flux_velocity_weight", {k: v for k, v in s.items() if k != "sigma_v_kms"}, InputNorm())


def test_bad_input_options_name_their_key():
    with pytest.raises(ConfigError, match="data.flux_norm"):
        InputNorm(flux_norm="max")
    with pytest.raises(ConfigError, match="data.flux_norm"):
        InputNorm.from_cfg({"flux_norm": "asinh"})
    with pytest.raises(ConfigError, match="data.sigma_v_ref_kms"):
        InputNorm.from_cfg({"sigma_v_ref_kms": 0})
    with pytest.raises(ConfigError, match="data.flux_snr_scale"):
        InputNorm.from_cfg({"flux_snr_scale": "big"})
    assert InputNorm.from_cfg({}) == InputNorm()  # older configs: the defaults


def test_two_stream_modes_and_the_stream_check():
    assert set(two_stream_modes()) == {
        "flux_velocity", "flux_shuffled_velocity", "flux_velocity_mask", "flux_velocity_weight",
        "flux_shuffled_velocity_mask", "flux_shuffled_velocity_weight"}
    for mode in CHANNEL_MODES:
        check_streams(mode, 1, "baseline")
    check_streams("flux_velocity_weight", 2, "dual_stream")
    for mode in ("flux", "velocity", "velocity_mask", "velocity_weight"):
        with pytest.raises(ConfigError, match="model=dual_stream.*data.channels"):
            check_streams(mode, 2, "dual_stream")


@pytest.mark.parametrize("mode", [m for m in CHANNEL_MODES if needs_shuffle(m)])
def test_shuffled_modes_move_velocity_mask_and_weight_together(mode):
    n = 7
    s = synthetic_samples(n, npix=10, seed=3)
    src = MemorySource(s)
    shuffled = LensDataset(src, "train", n, seed=2, channels=mode)
    paired = LensDataset(src, "train", n, seed=2, channels=mode.replace("shuffled_", ""))
    perm = shuffled.perm
    assert np.all(perm != np.arange(n))
    idx = [0, 3, 6]
    a, b = shuffled.__getitems__(idx), paired.__getitems__(list(range(n)))
    torch.testing.assert_close(a["x"][:, 0], b["x"][idx, 0])  # own flux
    torch.testing.assert_close(a["x"][:, 1:], b["x"][perm[idx], 1:])  # partner's velocity [, mask, weight]
    assert a["label"].tolist() == b["label"][idx].tolist()
    x = a["x"].numpy()
    if x.shape[1] > 2:  # the velocity lies inside the mask it travels with
        assert np.all(x[:, 1][x[:, 2] == 0] == 0)
        assert np.array_equal(x[:, 2] == 1, s["mask"][perm[idx]])
        assert not np.array_equal(x[:, 2] == 1, s["mask"][idx])
    if x.shape[1] > 3:
        assert np.all(x[:, 3][x[:, 2] == 0] == 0)
    # raw(): velocity-side keys from perm(i), the rest (flux sigma included) from i
    raw = shuffled.raw(idx)
    for key in ("velocity", "mask", "sigma_v_kms"):
        np.testing.assert_array_equal(raw[key], s[key][perm[idx]])
    for key in ("flux", "flux_sigma", "label"):
        np.testing.assert_array_equal(raw[key], s[key][idx])

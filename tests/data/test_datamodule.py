import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from lensml.config_checks import check_train_config
from lensml.data.cache import cache_config, generate_cache, physics_config
from lensml.errors import ConfigError
from lensml.sim.simulator import SAMPLE_KEYS, build_simulator

SIZES = ("data.n_train=8", "data.n_val=6", "data.n_test=6", "data.batch_size=4", "data.num_workers=0")
#: the weight channel and S/N flux need the sample keys sigma_v_kms / flux_sigma (issue 10, part 2)
NOISE_KEYS = pytest.mark.skipif(not {"sigma_v_kms", "flux_sigma"} <= set(SAMPLE_KEYS),
                                reason="simulator samples lack sigma_v_kms / flux_sigma")


def build(cfg):
    check_train_config(cfg)
    return instantiate(cfg.data, _partial_=True, _convert_="all")(sim_cfg=physics_config(cfg))


@pytest.mark.parametrize(
    ("model", "channels", "c"),
    [("baseline", None, 1), ("dual_stream", None, 2), ("baseline", "velocity", 1),
     ("dual_stream", "flux_shuffled_velocity", 2), ("dual_stream", "flux_velocity_mask", 3),
     ("dual_stream", "flux_shuffled_velocity_mask", 3), ("baseline", "velocity_mask", 2),
     pytest.param("dual_stream", "flux_velocity_weight", 4, marks=NOISE_KEYS),
     pytest.param("dual_stream", "flux_shuffled_velocity_weight", 4, marks=NOISE_KEYS),
     pytest.param("baseline", "velocity_weight", 3, marks=NOISE_KEYS)],
)
def test_channel_modes_give_model_ready_batches(model, channels, c, compose_train, tiny):
    extra = [f"data.channels={channels}"] if channels else []
    cfg = compose_train(*tiny, *SIZES, f"model={model}", *extra)
    dm = build(cfg)
    dm.setup("fit")
    assert dm.in_channels == c
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (4, c, 32, 32) and batch["x"].dtype == torch.float32
    assert batch["label"].dtype == torch.long and len(batch["source_id"]) == 4
    net = instantiate(cfg.model.net, in_channels=dm.in_channels)
    assert net(batch["x"]).shape == (4, 2)


@pytest.mark.parametrize(
    "extra",
    [(), pytest.param(("model=dual_stream", "data.channels=flux_shuffled_velocity_weight",
                       "data.flux_norm=snr"), marks=NOISE_KEYS)],
)
def test_cache_mode_gives_the_same_batches(extra, tmp_path, compose_train, tiny):
    cfg = compose_train(*tiny, *SIZES, f"data.cache_dir={tmp_path}", "data.seed=5", *extra)
    generate_cache(build_simulator(physics_config(cfg)), cache_config(physics_config(cfg), 5),
                   {"train": 8, "val": 6, "test": 6}, tmp_path, shard_size=5)
    on_the_fly, cached = build(cfg), build(compose_train(*tiny, *SIZES, f"data.cache_dir={tmp_path}",
                                                         "data.seed=5", "data=cache", *extra))
    assert cached.mode == "cache"
    for dm in (on_the_fly, cached):
        dm.setup("fit")
    for a, b in zip(on_the_fly.val_dataloader(), cached.val_dataloader()):
        torch.testing.assert_close(a["x"], b["x"], rtol=1e-4, atol=1e-4)  # float32 batch round-off
        assert a["label"].tolist() == b["label"].tolist() and a["source_id"] == b["source_id"]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [(["model=dual_stream", "data.channels=flux"], "data.channels"),
     (["model=dual_stream", "data.channels=velocity"], "model=dual_stream"),
     (["data.channels=rgb"], "data.channels"),
     (["model=dual_stream", "data.channels=velocity_mask"], "model=dual_stream"),
     (["data.flux_norm=max"], "data.flux_norm"),
     (["data.flux_snr_scale=0"], "data.flux_snr_scale"),
     (["data.sigma_v_ref_kms=-1"], "data.sigma_v_ref_kms"),
     (["data.mode=disk"], "data.mode"),
     (["data.n_train=0"], "data.n_train"),
     (["data.batch_size=-1"], "data.batch_size"),
     (["model.optimizer.lr=0"], "model.optimizer.lr"),
     (["trainer.max_epochs=0"], "trainer.max_epochs"),
     (["metrics.mass_edges_log10=[8,7]"], "metrics.mass_edges_log10"),
     (["seed=-2"], "seed")],
)
def test_bad_config_names_the_key(overrides, key, compose_train):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_train_config(compose_train(*overrides))


def test_mask_channel_is_the_simulated_mask(compose_train, tiny):
    """Real simulator: the mask channel is the sample's mask and the velocity channel is 0 outside it."""
    cfg = compose_train(*tiny, *SIZES, "model=dual_stream", "data.channels=flux_velocity_mask")
    dm = build(cfg)
    dm.setup("fit")
    ds = dm.datasets["val"]
    x, raw = ds.__getitems__([0, 1, 2])["x"].numpy(), ds.raw([0, 1, 2])
    assert np.array_equal(x[:, 2] == 1.0, raw["mask"]) and raw["mask"].any()
    assert np.all(x[:, 1][~raw["mask"]] == 0.0)


@NOISE_KEYS
def test_weight_and_snr_channels_from_the_simulator(compose_train, tiny):
    cfg = compose_train(*tiny, *SIZES, "model=dual_stream", "data.channels=flux_velocity_weight",
                        "data.flux_norm=snr")
    dm = build(cfg)
    dm.setup("fit")
    ds = dm.datasets["val"]
    x, raw = ds.__getitems__([0, 1, 2])["x"].numpy(), ds.raw([0, 1, 2])
    mask, sv = raw["mask"], raw["sigma_v_kms"]
    assert np.all(x[:, 3][~mask] == 0.0) and np.all(x[:, 3][mask] > 0.0)
    np.testing.assert_allclose(x[:, 3][mask], np.minimum((10.0 / sv[mask]) ** 2, 100.0), rtol=1e-5)
    np.testing.assert_allclose(x[:, 0], raw["flux"] / raw["flux_sigma"] / 30.0, rtol=1e-5)
    assert 0.1 < np.quantile(x[:, 0], 0.995, axis=(1, 2)).max() < 10  # S/N / 30 is O(1)


@pytest.mark.parametrize(
    ("experiment", "channels"),
    [("velocity_weight", "flux_velocity_weight"),
     ("shuffled_velocity_weight", "flux_shuffled_velocity_weight")],
)
def test_weight_experiments_compose_and_pass_the_checks(experiment, channels, compose_train):
    cfg = compose_train(f"experiment={experiment}")
    check_train_config(cfg)
    assert cfg.model.name == "dual_stream" and cfg.data.channels == channels and cfg.data.flux_norm == "snr"


@pytest.mark.parametrize("mode", ["flux_shuffled_velocity_mask",
                                  pytest.param("flux_shuffled_velocity_weight", marks=NOISE_KEYS)])
def test_shuffled_simulated_velocity_stays_inside_its_own_mask(mode, compose_train, tiny):
    """Real simulator: the partner's velocity (0 outside its mask) arrives with the partner's mask."""
    cfg = compose_train(*tiny, *SIZES, "model=dual_stream", f"data.channels={mode}")
    dm = build(cfg)
    dm.setup("fit")
    ds = dm.datasets["train"]
    x = ds.__getitems__(list(range(8)))["x"].numpy()
    outside = x[:, 2] == 0
    assert np.all(x[:, 1][outside] == 0) and np.all(x[:, 2:][:, -1][outside] == 0)
    own = build(compose_train(*tiny, *SIZES, "model=dual_stream", "data.channels=flux_velocity_mask"))
    own.setup("fit")
    x_own = own.datasets["train"].__getitems__(list(range(8)))["x"].numpy()
    np.testing.assert_allclose(x[:, 2], x_own[ds.perm, 2])  # the mask of sample perm(i)
    np.testing.assert_allclose(x[:, 0], x_own[:, 0], rtol=1e-4, atol=1e-4)  # the own flux
    assert not np.array_equal(x[:, 2], x_own[:, 2])


def test_quickstart_experiment_composes_and_passes_the_checks(compose_train):
    """``make run``'s task: control physics (fixed lens and source), model=resnet, fresh samples per epoch."""
    cfg = compose_train("experiment=quickstart")
    check_train_config(cfg)
    assert cfg.model.name == "resnet" and cfg.data.stream and cfg.data.channels == "flux"
    assert cfg.lens.theta_E == 1.0 and cfg.source.n_clumps == 0
    build_simulator(physics_config(cfg))


def test_headline_resnet_experiment_composes(compose_train):
    cfg = compose_train("experiment=headline_resnet", "data.channels=flux_velocity")
    check_train_config(cfg)
    assert cfg.model.name == "resnet" and cfg.data.stream and cfg.data.augment and cfg.data.seed == 0
    assert list(cfg.subhalo.mass_range_msun) == [1e10, 1e11] and cfg.data.channels == "flux_velocity"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [(["data.stream=often"], "data.stream"), (["data.augment=1"], "data.augment"),
     (["data.curriculum.enabled=true", "data.curriculum.frac=2"], "data.curriculum.frac"),
     (["data.curriculum.enabled=true", "data=cache"], "data.curriculum.enabled"),
     (["data.oracle_residual=true", "data=cache"], "data.oracle_residual")],
)
def test_bad_stream_augment_curriculum_keys_name_the_key(overrides, key, compose_train):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build(compose_train(*overrides))

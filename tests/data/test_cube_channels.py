"""``data.channels=cube``: the IFU cube's noisy slices as early-fusion inputs (lensml.data.channels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from lensml.config_checks import check_train_config
from lensml.data.cache import cache_config, generate_cache, physics_config
from lensml.data.channels import n_channels, normalise_cube, stack_sample
from lensml.errors import ConfigError
from lensml.sim.simulator import build_simulator

SIZES = ("data.n_train=8", "data.n_val=4", "data.n_test=4", "data.batch_size=4", "data.num_workers=0")
CUBE = ("data.channels=cube", "instrument.n_velocity_channels=8", "model=resnet")


def build(cfg):  # noqa: ANN001, ANN201
    check_train_config(cfg)
    return instantiate(cfg.data, _partial_=True, _convert_="all")(sim_cfg=physics_config(cfg))


def test_cube_mode_feeds_the_slices_and_a_resnet_trains_on_them(compose_train, tiny) -> None:  # noqa: ANN001
    cfg = compose_train(*tiny, *SIZES, *CUBE)
    dm = build(cfg)
    dm.setup("fit")
    assert dm.in_channels == 8
    batch = next(iter(dm.train_dataloader()))
    x = batch["x"]
    assert x.shape == (4, 8, 32, 32) and x.dtype == torch.float32 and torch.isfinite(x).all()
    sim = build_simulator(physics_config(cfg))
    raw = sim.sample_batch(int(cfg.data.seed), "train", batch["index"].tolist())
    np.testing.assert_allclose(x.numpy(), normalise_cube(raw["cube"]), rtol=1e-6)
    torch.manual_seed(0)
    net = instantiate(cfg.model.net, in_channels=dm.in_channels)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in net.parameters()]
    loss = torch.nn.functional.cross_entropy(net(x), batch["label"])
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_cache_stores_the_cube(tmp_path, compose_train, tiny) -> None:  # noqa: ANN001
    cfg = compose_train(*tiny, *SIZES, *CUBE, f"data.cache_dir={tmp_path}")
    generate_cache(build_simulator(physics_config(cfg)), cache_config(physics_config(cfg), 0),
                   {"train": 8, "val": 4, "test": 4}, tmp_path, shard_size=4)
    with np.load(tmp_path / "val_00000.npz") as z:
        assert z["cube"].shape == (4, 8, 32, 32)
    on_the_fly, cached = build(cfg), build(compose_train(*tiny, *SIZES, *CUBE, f"data.cache_dir={tmp_path}",
                                                         "data=cache"))
    for dm in (on_the_fly, cached):
        dm.setup("fit")
    for a, b in zip(on_the_fly.val_dataloader(), cached.val_dataloader()):
        torch.testing.assert_close(a["x"], b["x"])


def test_stack_sample_needs_the_cube_key() -> None:
    s = {"cube": np.ones((2, 4, 6, 6), np.float32)}
    from lensml.data.channels import InputNorm

    assert stack_sample("cube", s, InputNorm()).shape == (2, 4, 6, 6)
    with pytest.raises(ValueError, match="cube"):
        stack_sample("cube", {}, InputNorm())
    with pytest.raises(ConfigError, match="instrument.n_velocity_channels"):
        n_channels("cube")


@pytest.mark.parametrize(
    ("overrides", "key"),
    [(["data.channels=cube"], "instrument.n_velocity_channels"),
     ([*CUBE, "data.flux_norm=snr"], "data.flux_norm"),
     (["data.channels=cube", "instrument.n_velocity_channels=8", "model=dual_stream"], "data.channels")],
)
def test_bad_cube_channel_configs_name_the_key(overrides, key, compose_train) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build(compose_train(*overrides))

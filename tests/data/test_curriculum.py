"""Curriculum: stages by epoch, narrowed priors, target on validation, determinism."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hydra.utils import instantiate

from lensml.data.cache import physics_config
from lensml.data.curriculum import Curriculum, narrow_prior, target_mass_range
from lensml.errors import ConfigError

N = 6


def test_progress_steps_through_the_stages_then_stays_at_the_target():
    c = Curriculum(enabled=True, frac=0.5, stages=4, total_epochs=8)
    assert [c.progress(e) for e in range(8)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    assert Curriculum(enabled=False).progress(0) == 1.0


def test_narrowed_priors_keep_their_centre():
    u = {"dist": "uniform", "low": 0.0, "high": 360.0}
    assert narrow_prior(u, 0.5) == {"dist": "uniform", "low": 90.0, "high": 270.0}
    assert narrow_prior(u, 0.0) == 180.0
    n = {"dist": "normal", "mean": 0.0, "sigma": 0.1, "low": -0.3, "high": 0.3}
    assert narrow_prior(n, 0.5) == pytest.approx({"dist": "normal", "mean": 0.0, "sigma": 0.05, "low": -0.15,
                                                  "high": 0.15})
    lu = narrow_prior({"dist": "loguniform", "low": 1.0, "high": 100.0}, 0.5)
    assert lu["low"] == pytest.approx(10**0.5) and lu["high"] == pytest.approx(10**1.5)
    r = {"dist": "randint", "low": 0, "high": 3}
    assert narrow_prior(r, 0.0) == r


def test_stage_configs_anneal_mass_and_nuisance(compose_train, tiny):
    cfg = physics_config(compose_train(*tiny, "subhalo.mass_bin=1e9"))
    c = Curriculum(enabled=True, mass_range_msun=(1e10, 1e11), nuisance_width=0.0, total_epochs=4)
    start, mid = c.stage_config(cfg, 0.0), c.stage_config(cfg, 0.5)
    assert target_mass_range(start) == pytest.approx((1e10, 1e11))
    lo, hi = target_mass_range(mid)
    assert lo == pytest.approx(10**9.25) and hi == pytest.approx(10**10.25)
    assert start.lens.theta_E == pytest.approx(1.0) and mid.lens.theta_E.high == pytest.approx(1.05)
    assert c.stage_config(cfg, 1.0) is cfg
    with pytest.raises(ConfigError, match="data.curriculum.frac"):
        Curriculum.from_cfg({"enabled": True, "frac": 0.0})
    with pytest.raises(ConfigError, match="unknown keys"):
        Curriculum.from_cfg({"enable": True})


def test_curriculum_batches_are_easy_early_and_target_on_validation(compose_train, tiny):
    over = (*tiny, f"data.n_train={N}", "data.n_val=4", "data.n_test=2", "data.batch_size=3",
            "data.num_workers=0", "data.stream=true", "model=baseline", "trainer.max_epochs=4",
            "data.curriculum.enabled=true", "data.curriculum.frac=0.5", "data.curriculum.stages=2",
            "subhalo.p_present=1.0")
    cfg = compose_train(*over)
    dm = instantiate(cfg.data, _partial_=True, _convert_="all")(sim_cfg=physics_config(cfg))
    dm.trainer = SimpleNamespace(max_epochs=4, world_size=1, global_rank=0)  # total_epochs: null -> 4
    dm.setup("fit")
    assert dm.curriculum.total_epochs == 4
    ds = dm.datasets["train"]
    e0 = ds.__getitems__(list(range(N)))
    assert np.all(e0["mass_msun"].numpy() >= 1e10)  # stage 0: the easy mass range
    late = ds.__getitems__(list(range(3 * N, 4 * N)))  # epoch 3 >= frac x 4 epochs: target priors
    assert np.all(late["mass_msun"].numpy() <= 1e10)
    again = ds.__getitems__([1, 4])  # a sample is a pure function of (seed, epoch, index)
    np.testing.assert_allclose(again["x"].numpy(), e0["x"].numpy()[[1, 4]], rtol=1e-4, atol=1e-4)
    plain = compose_train(*over[:-4], "subhalo.p_present=1.0")
    ref = instantiate(plain.data, _partial_=True, _convert_="all")(sim_cfg=physics_config(plain))
    ref.setup("fit")
    val = dm.datasets["val"].__getitems__([0, 1, 2, 3])
    val_ref = ref.datasets["val"].__getitems__([0, 1, 2, 3])
    np.testing.assert_allclose(val["x"].numpy(), val_ref["x"].numpy())
    with pytest.raises(ValueError, match="spans epochs"):
        ds.__getitems__([N - 1, N])

"""Shared draws for the inference tests: the default physics in float64, every sample with a subhalo."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from omegaconf import OmegaConf

from lensml.analysis.scoring import compose_train_config
from lensml.data.cache import physics_config
from lensml.inference import physics


def make_sim(overrides: list[str] = (), mass_bin: float = 1e10):  # noqa: ANN201
    cfg = compose_train_config(["sim.dtype=float64", "subhalo.p_present=1.0", *overrides])
    cfg = copy.deepcopy(cfg)
    OmegaConf.update(cfg, "subhalo.mass_bin", mass_bin)
    return physics.build_simulator(physics_config(cfg))


@pytest.fixture(scope="module")
def sim_draws():  # noqa: ANN201
    sim = make_sim()
    return sim, sim.draw_batch(0, "test", np.arange(6))

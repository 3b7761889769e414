"""Batches carry the simulator's subhalo metadata (masses, tau, c200) unchanged, as float64."""

import numpy as np
import torch

from lensml.data.cache import physics_config
from lensml.data.dataset import LensDataset, SimulatorSource
from lensml.sim.simulator import SUBHALO_METADATA_KEYS


def test_batches_carry_the_subhalo_metadata(compose_train, tiny):
    source = SimulatorSource(physics_config(compose_train(*tiny, "subhalo.p_present=0.6")), seed=3)
    batch = LensDataset(source, "val", 6, seed=3, channels="flux_velocity").__getitems__([0, 1, 2, 3, 4, 5])
    raw = source.get("val", np.arange(6), 6)
    for key in SUBHALO_METADATA_KEYS:
        assert batch[key].dtype == torch.float64 and batch[key].shape == (6,)
        np.testing.assert_array_equal(batch[key].numpy(), raw[key])
    pos = batch["label"] == 1
    assert torch.all(batch["m_proj_1kpc_msun"][pos] > 0) and torch.all(batch["m_proj_1kpc_msun"][~pos] == 0)

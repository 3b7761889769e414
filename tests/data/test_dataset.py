import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lensml.data.cache import physics_config
from lensml.data.channels import n_channels, normalise_flux, shuffle_permutation, stack_channels
from lensml.data.dataset import LensDataset, SimulatorSource, collate
from lensml.errors import ConfigError


@pytest.fixture(scope="module")
def source(compose_train, tiny) -> SimulatorSource:
    return SimulatorSource(physics_config(compose_train(*tiny)), seed=3)


def test_shuffle_permutation_is_a_deterministic_derangement():
    for n in (2, 3, 50):
        p = shuffle_permutation(0, "train", n)
        assert sorted(p) == list(range(n))
        assert np.all(p != np.arange(n))
        assert np.array_equal(p, shuffle_permutation(0, "train", n))
    assert not np.array_equal(shuffle_permutation(0, "train", 50), shuffle_permutation(0, "val", 50))
    assert not np.array_equal(shuffle_permutation(0, "train", 50), shuffle_permutation(1, "train", 50))


def test_channel_modes_and_normalisation():
    rng = np.random.default_rng(0)
    flux = rng.random((3, 8, 8)).astype(np.float32) * np.array([1.0, 10.0, 100.0], np.float32)[:, None, None]
    vel = rng.normal(0, 150, (3, 8, 8)).astype(np.float32)
    nf = normalise_flux(flux, 0.995)
    np.testing.assert_allclose(np.quantile(nf.reshape(3, -1), 0.995, axis=1), 1.0, rtol=1e-5)
    x = stack_channels("flux_velocity", flux, vel, velocity_scale_kms=300.0)
    assert x.shape == (3, 2, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 1], vel / 300.0, rtol=1e-6)
    assert stack_channels("velocity", flux, vel, 300.0).shape == (3, 1, 8, 8)
    np.testing.assert_allclose(stack_channels("velocity", flux, vel, 300.0)[:, 0], vel / 300.0, rtol=1e-6)
    assert n_channels("flux_shuffled_velocity") == 2
    with pytest.raises(ConfigError, match="data.channels"):
        n_channels("flux+velocity")


def test_sample_is_independent_of_its_batch(source):
    ds = LensDataset(source, "val", 8, seed=3, channels="flux_velocity")
    a = ds.__getitems__([0, 1, 2, 3, 4])
    b = ds.__getitems__([4, 1])
    # equal up to float32 round-off of batched rendering
    torch.testing.assert_close(b["x"], a["x"][[4, 1]], rtol=1e-4, atol=1e-4)
    assert b["label"].tolist() == a["label"][[4, 1]].tolist()
    assert b["index"].tolist() == [4, 1] and isinstance(b["source_id"][0], str)
    one = ds[2]
    torch.testing.assert_close(one["x"], a["x"][2], rtol=1e-4, atol=1e-4)
    with pytest.raises(IndexError):
        ds.__getitems__([8])


def test_shuffled_velocity_takes_the_permuted_sample(source):
    n = 6
    paired = LensDataset(source, "train", n, seed=3, channels="flux_velocity")
    shuffled = LensDataset(source, "train", n, seed=3, channels="flux_shuffled_velocity")
    idx = [0, 2, 5]
    a, s = paired.__getitems__(list(range(n))), shuffled.__getitems__(idx)
    perm = shuffled.perm
    tol = {"rtol": 1e-4, "atol": 1e-4}
    torch.testing.assert_close(s["x"][:, 0], a["x"][idx, 0], **tol)  # own flux
    torch.testing.assert_close(s["x"][:, 1], a["x"][perm[idx], 1], **tol)  # velocity of sample perm(i)
    assert s["label"].tolist() == a["label"][idx].tolist()  # label stays with the flux sample
    assert not torch.allclose(s["x"][:, 1], a["x"][idx, 1], **tol)


def test_dataloader_worker_gives_the_same_batches(source):
    ds = LensDataset(source, "test", 6, seed=3, channels="flux")
    batches = []
    for workers in (0, 1):
        dl = DataLoader(ds, batch_size=4, shuffle=False, num_workers=workers, collate_fn=collate)
        batches.append(list(dl))
    assert [len(b["label"]) for b in batches[0]] == [4, 2]
    for b0, b1 in zip(*batches):
        torch.testing.assert_close(b0["x"], b1["x"])
        assert b0["source_id"] == b1["source_id"]


class _Counting:
    """Counts the samples the wrapped (real) source renders."""

    def __init__(self, source) -> None:
        self.source, self.rendered = source, 0

    def get(self, split, indices, n):
        self.rendered += len(indices)
        return self.source.get(split, indices, n)


def test_memory_cache_renders_each_sample_once_and_changes_nothing(source):
    counting = _Counting(source)
    memo = LensDataset(counting, "val", 6, seed=3, channels="flux_shuffled_velocity", memory_cache=True)
    plain = LensDataset(source, "val", 6, seed=3, channels="flux_shuffled_velocity")
    first = memo.__getitems__([0, 1, 2])
    again = memo.__getitems__([2, 1, 0, 3])
    needed = {0, 1, 2, 3} | set(memo.perm[[0, 1, 2, 3]].tolist())  # samples and their velocity partners
    assert counting.rendered == len(needed) < 3 + 4 + 4  # each rendered once
    torch.testing.assert_close(again["x"][:3], first["x"][[2, 1, 0]])
    torch.testing.assert_close(again["x"], plain.__getitems__([2, 1, 0, 3])["x"], rtol=1e-4, atol=1e-4)

"""Streaming training data (fresh samples per epoch), resume continuity and D4 augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from lensml.data.augment import EpochSampler, apply_d4, d4_codes, d4_positions
from lensml.data.cache import physics_config
from lensml.data.dataset import LensDataset, SimulatorSource

N = 8


@pytest.fixture(scope="module")
def source(compose_train, tiny) -> SimulatorSource:
    return SimulatorSource(physics_config(compose_train(*tiny)), seed=3)


def test_epoch_sampler_draws_fresh_positions_each_epoch():
    s = EpochSampler(N, seed=1)
    seen = []
    for epoch in range(3):
        s.set_epoch(epoch)
        pos = list(s)
        assert sorted(pos) == list(range(epoch * N, (epoch + 1) * N))
        seen += pos
        s2 = EpochSampler(N, seed=1)
        s2.set_epoch(epoch)
        assert list(s2) == pos  # the order is a pure function of (seed, epoch)
    assert len(set(seen)) == 3 * N
    assert list(EpochSampler(N, seed=2).order(0)) != list(EpochSampler(N, seed=1).order(0))


def test_epoch_sampler_shards_each_epoch_over_processes():
    """DDP: the processes together cover the epoch's positions (padded by wrapping), each epoch fresh."""
    for epoch in (0, 2):
        parts = []
        for rank in range(3):
            s = EpochSampler(N, seed=1, num_replicas=3, rank=rank)
            s.set_epoch(epoch)
            parts.append(list(s))
            assert len(parts[-1]) == len(s) == 3
        assert set(sum(parts, [])) == set(range(epoch * N, (epoch + 1) * N))


def test_streamed_samples_are_distinct_and_deterministic(source):
    stream = LensDataset(source, "train", N, seed=3, channels="flux", stream=True, memory_cache=True)
    plain = LensDataset(source, "train", N, seed=3, channels="flux")
    e0, e1 = stream.__getitems__(list(range(N))), stream.__getitems__(list(range(N, 2 * N)))
    assert e1["index"].tolist() == list(range(N, 2 * N))
    assert not torch.allclose(e0["x"], e1["x"])  # epoch 1 sees other samples
    # the epoch-0 block is the non-streamed split; a position is a pure function of (seed, p), batch-free
    torch.testing.assert_close(e0["x"], plain.__getitems__(list(range(N)))["x"])
    again = stream.__getitems__([N + 5, N + 2])
    torch.testing.assert_close(again["x"], e1["x"][[5, 2]], rtol=1e-4, atol=1e-4)
    # not streaming: epoch 1 positions map back to the same N samples
    torch.testing.assert_close(plain.__getitems__(list(range(N, 2 * N)))["x"], e0["x"])
    assert not stream._memo  # no unbounded memory cache of streamed samples
    cycled = LensDataset(source, "train", N, seed=3, channels="flux", stream=True, cycle=True)
    assert cycled.__getitems__([N + 1])["index"].tolist() == [1]


def test_streamed_shuffle_pairs_within_each_block(source):
    ds = LensDataset(source, "train", N, seed=3, channels="flux_shuffled_velocity", stream=True)
    paired = LensDataset(source, "train", N, seed=3, channels="flux_velocity", stream=True)
    pos = [N + 1, N + 4]
    s, a = ds.__getitems__(pos), paired.__getitems__(list(range(N, 2 * N)))
    torch.testing.assert_close(s["x"][:, 1], a["x"][ds.perm[[1, 4]], 1], rtol=1e-4, atol=1e-4)


class _Recorder(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(int(self.current_epoch), []).extend(batch["index"].tolist())
        return self.lin(batch["x"].mean(dim=(1, 2, 3))[:, None]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(dm, tmp_path, epochs: int, ckpt=None) -> _Recorder:
    model = _Recorder()
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=0,
                         num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt)
    trainer.save_checkpoint(tmp_path / f"e{epochs}.ckpt")
    return model


def test_training_sees_max_epochs_x_n_train_samples_and_resume_continues(compose_train, tiny, tmp_path):
    from hydra.utils import instantiate

    cfg = compose_train(*tiny, f"data.n_train={N}", "data.n_val=2", "data.n_test=2", "data.batch_size=4",
                        "data.num_workers=0", "data.stream=true", "data.channels=flux", "model=baseline")
    make = instantiate(cfg.data, _partial_=True, _convert_="all")
    full = _fit(make(sim_cfg=physics_config(cfg)), tmp_path, 3)
    assert {e: sorted(v) for e, v in full.seen.items()} == {
        e: list(range(e * N, (e + 1) * N)) for e in range(3)}
    first = _fit(make(sim_cfg=physics_config(cfg)), tmp_path, 2)
    resumed = _fit(make(sim_cfg=physics_config(cfg)), tmp_path, 3, ckpt=str(tmp_path / "e2.ckpt"))
    assert set(first.seen) == {0, 1} and set(resumed.seen) == {2}
    assert resumed.seen[2] == full.seen[2]  # same positions, same order as the uninterrupted run


def test_d4_is_a_group_action_on_images_and_positions():
    rng = np.random.default_rng(0)
    n = 6
    img = rng.random((8, 3, n, n)).astype(np.float32)
    codes = np.arange(8)
    out = apply_d4(img, codes)
    # the 8 transforms of one image are distinct, and each channel gets the same transform
    flat = {out[k, 0].tobytes() for k in range(8)}
    img_same = np.repeat(img[:1], 8, axis=0)
    out_same = apply_d4(img_same, codes)
    assert len({out_same[k, 0].tobytes() for k in range(8)}) == 8 and len(flat) == 8
    for k in range(8):
        for c in (1, 2):
            ref = apply_d4(img_same[k : k + 1, c : c + 1], codes[k : k + 1])
            np.testing.assert_array_equal(out_same[k, c], ref[0, 0])
    # positions move with the pixels: a single bright pixel at (x, y) lands at d4_positions(x, y)
    pix = 0.1
    r, c = 1, 4  # row = y, column = x, grid centred
    for k in range(8):
        a = np.zeros((1, 1, n, n), np.float32)
        a[0, 0, r, c] = 1.0
        b = apply_d4(a, np.array([k]))[0, 0]
        rr, cc = np.argwhere(b == 1.0)[0]
        x, y = d4_positions(np.array([(c - (n - 1) / 2) * pix]), np.array([(r - (n - 1) / 2) * pix]),
                            np.array([k]))
        np.testing.assert_allclose([x[0], y[0]], [(cc - (n - 1) / 2) * pix, (rr - (n - 1) / 2) * pix])
    assert np.isnan(d4_positions(np.array([np.nan]), np.array([np.nan]), np.array([3]))[0][0])


def test_d4_codes_are_deterministic_and_cover_the_group():
    pos = np.arange(4000)
    c = d4_codes(7, pos)
    assert np.array_equal(c, d4_codes(7, pos)) and not np.array_equal(c, d4_codes(8, pos))
    counts = np.bincount(c, minlength=8)
    assert counts.min() > 400  # ~500 each


def test_augmentation_keeps_labels_and_pairs_channels(source):
    plain = LensDataset(source, "train", N, seed=3, channels="flux_velocity_mask")
    aug = LensDataset(source, "train", N, seed=3, channels="flux_velocity_mask", augment=True)
    pos = list(range(N, 2 * N))
    a, b = plain.__getitems__(pos), aug.__getitems__(pos)
    assert b["label"].tolist() == a["label"].tolist() and b["index"].tolist() == a["index"].tolist()
    codes = d4_codes(3, np.array(pos))
    assert len(set(codes.tolist())) > 1
    np.testing.assert_array_equal(b["x"].numpy(), apply_d4(a["x"].numpy(), codes))
    # the velocity stays zero exactly where the transformed mask is zero: channels stay paired
    x = b["x"].numpy()
    assert np.all(x[:, 1][x[:, 2] == 0] == 0)
    assert not np.array_equal(b["x"].numpy(), a["x"].numpy())
    val = LensDataset(source, "val", 4, seed=3, channels="flux", augment=True)
    assert not val.augment

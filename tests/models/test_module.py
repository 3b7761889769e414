import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lensml.errors import ConfigError
from lensml.models.cnn import BaselineCNN
from lensml.models.module import LensClassifier, PredictionStore, decode_source_ids, encode_source_ids


class _Blobs(Dataset):
    """Separable toy images: class 1 has a bright central blob. Batch dicts as LensDataset returns them."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = (torch.rand(n, generator=g) < 0.5).long()
        self.x = 0.3 * torch.randn(n, 1, 16, 16, generator=g)
        self.x[self.y == 1, :, 6:10, 6:10] += 1.0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        y = self.y[i]
        return {
            "x": self.x[i], "label": y, "mass_msun": torch.tensor(1e8 if y else 0.0, dtype=torch.float64),
            "sub_x_arcsec": torch.tensor(0.1, dtype=torch.float64),
            "sub_y_arcsec": torch.tensor(float("nan"), dtype=torch.float64),
            "index": torch.tensor(i), "source_id": "disk" if i % 2 else "7815-3702",
        }


def test_source_id_round_trip():
    ids = ["disk", "7815-3702", ""]
    assert list(decode_source_ids(encode_source_ids(ids).numpy())) == ids


def test_prediction_store_drops_duplicate_indices_and_keeps_nan_positions():
    store = PredictionStore()
    batch = {
        "label": torch.tensor([1, 0]), "mass_msun": torch.tensor([1e8, 0.0], dtype=torch.float64),
        "sub_x_arcsec": torch.tensor([0.1, float("nan")], dtype=torch.float64),
        "sub_y_arcsec": torch.tensor([0.2, float("nan")], dtype=torch.float64),
        "index": torch.tensor([3, 4]), "source_id": ["a", "b"],
    }
    store.update(torch.tensor([0.9, 0.2]), batch)
    store.update(torch.tensor([0.9]), {k: v[:1] for k, v in batch.items()})  # sampler padding repeat
    out = store.compute()
    assert list(out["index"]) == [3, 4]
    assert np.isnan(out["sub_x_arcsec"][1]) and list(out["source_id"]) == ["a", "b"]


def test_module_learns_and_scores(tmp_path):
    pl.seed_everything(0, verbose=False)
    module = LensClassifier(BaselineCNN(in_channels=1), mass_edges_log10=[7.5, 8.5])
    trainer = pl.Trainer(
        max_epochs=4, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )
    train = DataLoader(_Blobs(256, 0), batch_size=32, shuffle=True)
    test = DataLoader(_Blobs(128, 1), batch_size=64)
    trainer.fit(module, train, test)
    trainer.test(module, test, verbose=False)
    res = module.results["test"]
    assert res["auc"] > 0.95
    assert res["per_mass_bin"]["1e8"]["auc"] == res["auc"]
    assert module.test_predictions["probs"].shape == (128,)
    assert set(module.test_predictions["source_id"]) == {"disk", "7815-3702"}


class _BlobsWithMasses(_Blobs):
    """As ``_Blobs``, with a projected mass of 3e6 M_sun for the positives (no tau / c200 keys)."""

    def __getitem__(self, i: int) -> dict:
        out = super().__getitem__(i)
        out["m_proj_1kpc_msun"] = torch.tensor(3e6 if self.y[i] else 0.0, dtype=torch.float64)
        return out


def test_module_bins_by_the_configured_mass_key(tmp_path):
    pl.seed_everything(0, verbose=False)
    module = LensClassifier(
        BaselineCNN(in_channels=1), mass_edges_log10=[5.5, 6.5, 7.5, 8.5], mass_key="m_proj_1kpc_msun"
    )
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )
    data = _BlobsWithMasses(64, 1)
    trainer.test(module, DataLoader(data, batch_size=32), verbose=False)
    res = module.results["test"]
    assert res["mass_key"] == "m_proj_1kpc_msun"
    assert res["per_mass_bin"]["1e6"]["n_pos"] == int(data.y.sum()) > 0  # M200 = 1e8 would be in "1e8"
    assert res["per_mass_bin"]["1e8"]["n_pos"] == 0
    preds = module.test_predictions
    assert preds["m_proj_1kpc_msun"].max() == 3e6 and np.isnan(preds["tau_trunc"]).all()


def test_unknown_mass_key_names_the_config_key():
    with pytest.raises(ConfigError, match="metrics.mass_key"):
        LensClassifier(BaselineCNN(in_channels=1), mass_key="m_total")

"""Override merging, the physics key and the arc geometry of the scoring module."""

import numpy as np
import pytest

from lensml.analysis.scoring import arc_geometry, merge_overrides, physics_overrides
from lensml.analysis.sensitivity import binned_rate, detections


def test_condition_replaces_keys_and_groups() -> None:
    run = [
        "model=baseline",
        "noise.peak_snr=50",
        "source.inclination_deg=30",
        "subhalo.mass_bin=1e9",
        "seed=1",
    ]
    got = merge_overrides(
        run, ["noise=low_snr", "source=manga", "source.template_dir=x", "subhalo.mass_bin=1e10"]
    )
    assert got == [
        "model=baseline",
        "seed=1",
        "noise=low_snr",
        "source=manga",
        "source.template_dir=x",
        "subhalo.mass_bin=1e10",
    ]
    # a dotted key in the condition replaces the same key only
    assert merge_overrides(["noise.peak_snr=50", "noise.sigma_v_kms=3"], ["noise.peak_snr=5"]) == [
        "noise.sigma_v_kms=3",
        "noise.peak_snr=5",
    ]


def test_physics_overrides_drop_model_and_training_keep_seeds() -> None:
    o = [
        "model=dual_stream",
        "data.channels=velocity",
        "data=cache",
        "trainer.max_epochs=3",
        "seed=2",
        "data.seed=0",
        "data.n_test=64",
        "noise=low_snr",
        "logger=csv",
        "+source.split_overrides.test.x=1",
    ]
    assert physics_overrides(o) == [
        "seed=2",
        "data.seed=0",
        "data.n_test=64",
        "noise=low_snr",
        "+source.split_overrides.test.x=1",
    ]


def test_arc_geometry() -> None:
    n, scale = 8, 0.1
    mask = np.zeros((2, n, n), bool)
    mask[:, 2, :] = True  # a horizontal "arc" on row 2: y = (2 - 3.5) * 0.1 = -0.15
    flux = np.where(mask, 1.0, 0.0)
    samples = {
        "mask": mask,
        "flux": flux,
        "sub_x_arcsec": np.array([0.05, np.nan]),
        "sub_y_arcsec": np.array([0.15, np.nan]),
    }
    g = arc_geometry(samples, scale)
    assert g["arc_distance_arcsec"][0] == pytest.approx(0.3)
    assert np.isnan(g["arc_distance_arcsec"][1])
    samples["sub_y_arcsec"] = np.array([-0.15, np.nan])
    assert arc_geometry(samples, scale)["arc_distance_arcsec"][0] == 0.0


def test_detection_threshold_and_binned_rate() -> None:
    y = np.r_[np.zeros(100), np.ones(4)].astype(int)
    p = np.r_[np.linspace(0, 0.99, 100), [0.2, 0.97, 0.995, 0.999]]
    det = detections(p, y, 0.05)
    assert det[:100].mean() <= 0.05 and det[100:].tolist() == [False, True, True, True]
    r = binned_rate(
        det[100:].astype(float),
        np.array([1.0, 1.0, 3.0, 3.0]),
        np.array([0.0, 2.0, 4.0]),
        np.random.default_rng(0),
        n_boot=100,
    )
    assert r["rate"] == [0.5, 1.0] and r["n"] == [2, 2] and r["lo"][1] == 1.0


@pytest.mark.parametrize("head_norm", ["none", "batch"])
def test_a_residual_run_loads_with_the_head_it_was_trained_with(tmp_path, head_norm) -> None:
    """Runs trained before the head's BatchNorm (head_norm=none, no key in their overrides) still score."""
    import torch

    from lensml.analysis.scoring import Run, compose_train_config, load_net
    from lensml.models.resnet import ResNetDetector

    trained = ResNetDetector(in_channels=2, head_norm=head_norm)
    ckpt = tmp_path / "best-00.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in trained.state_dict().items()}}, ckpt)
    overrides = ["model=resnet", "data.channels=flux_velocity"]
    net = load_net(Run(tmp_path, overrides, ckpt, {}), compose_train_config(overrides, tmp_path))
    x = torch.randn(2, 2, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), trained.eval()(x))


def test_an_oracle_residual_run_is_scored_on_residuals_not_on_the_images() -> None:
    """``predict`` builds the inputs a run was trained on: the residual maps for ``data.oracle_residual``."""
    import torch

    from lensml.analysis.scoring import compose_train_config, predict
    from lensml.sim.simulator import SUBHALO_METADATA_KEYS

    class MeanOfInput(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x.mean(dim=(1, 2, 3))
            return torch.stack([torch.zeros_like(m), 10 * m], dim=1)

    rng = np.random.default_rng(0)
    n = 4
    samples = {
        "label": np.array([0, 1, 0, 1]), "mass_msun": np.ones(n), "sub_x_arcsec": np.zeros(n),
        "sub_y_arcsec": np.zeros(n), "flux": rng.uniform(0.1, 1.0, (n, 8, 8)).astype(np.float32),
        "flux_sigma": np.full((n, 8, 8), 0.05, np.float32), "velocity": np.zeros((n, 8, 8), np.float32),
        "sigma_v_kms": np.full((n, 8, 8), 10.0, np.float32), "mask": np.ones((n, 8, 8), bool),
        "flux_resid_z": np.stack([np.full((8, 8), v, np.float32) for v in (-1.0, 2.0, -1.0, 2.0)]),
        "velocity_resid_z": np.zeros((n, 8, 8), np.float32), "resid_mask": np.ones((n, 8, 8), bool),
        "source_id": np.zeros(n), **{k: np.zeros(n) for k in SUBHALO_METADATA_KEYS},
    }
    cfg = compose_train_config(["data.channels=flux", "data.oracle_residual=true"])
    p = predict(MeanOfInput(), cfg, samples)
    assert np.allclose(p[[1, 3]], 1 / (1 + np.exp(-20.0))) and np.allclose(p[[0, 2]], 1 / (1 + np.exp(10.0)))

"""Residual detectors: shapes, stream separation, tiny-batch overfit, bf16 vs fp32, schedules, hardware."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torchmetrics.functional.classification import binary_auroc

from lensml.errors import ConfigError
from lensml.models.cnn import BaselineCNN, DualStreamCNN
from lensml.models.hardware import resolve_channels_last, resolve_precision
from lensml.models.resnet import ResNetDetector, ResNetDualStream, _head, coord_grid
from lensml.models.schedule import build_scheduler, check_schedule, cosine_factor

SMALL = {"widths": (8, 16, 32), "hidden": 16}


def test_shapes_and_coord_channels():
    x = torch.randn(3, 3, 64, 64)
    assert ResNetDetector(in_channels=3)(x).shape == (3, 2)
    assert ResNetDetector(in_channels=3, coord_channels=True, blocks=(2, 1, 1))(x).shape == (3, 2)
    assert ResNetDualStream(in_channels=3, coord_channels=True)(x).shape == (3, 2)
    g = coord_grid(x)
    assert g.shape == (3, 2, 64, 64) and g[0, 0, 0, 0] == -1 and g[0, 0, 0, -1] == 1 and g[0, 1, -1, 0] == 1
    with pytest.raises(ValueError, match="2 input channels"):
        ResNetDualStream(in_channels=1)
    with pytest.raises(ValueError, match="model.net.widths"):
        ResNetDetector(widths=(8, 16), blocks=(1, 1, 1))


def test_early_fusion_differs_from_flux_only_by_the_stem_alone():
    def n(m):
        return sum(p.numel() for p in m.parameters())

    assert n(ResNetDetector(in_channels=2)) - n(ResNetDetector(in_channels=1)) == 32 * 9
    dual = ResNetDualStream(in_channels=2)
    assert n(dual.flux_trunk) == n(ResNetDetector(in_channels=1).trunk)  # same per-stream width


def test_dual_stream_keeps_the_streams_apart():
    torch.manual_seed(0)
    net = ResNetDualStream(in_channels=2, **SMALL).eval()
    x = torch.randn(2, 2, 32, 32)
    for p in net.velocity_trunk.parameters():
        torch.nn.init.zeros_(p)
    x2 = x.clone()
    x2[:, 1] = torch.randn(2, 32, 32)
    assert torch.allclose(net(x), net(x2))
    x3 = x.clone()
    x3[:, 0] += torch.randn(2, 32, 32)
    assert not torch.allclose(net(x), net(x3))


def test_the_head_batchnorm_keeps_hidden_units_alive_under_a_shift():
    """All first-layer weights negative on non-negative pooled features (what a shifted input distribution did
    to the first v2 runs): without normalisation every hidden ReLU is dead and no gradient reaches the trunk;
    with the head's BatchNorm the pre-activations are centred on the batch and the gradient flows."""
    feats = torch.rand(32, 16) + 1.0
    grads = {}
    for norm in ("none", "batch"):
        head = _head(16, 8, 2, 0.0, norm)
        with torch.no_grad():
            head[0].weight.copy_(-torch.rand(8, 16))
            if head[0].bias is not None:
                head[0].bias.zero_()
        x = feats.clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(head(x), torch.arange(32) % 2).backward()
        grads[norm] = x.grad.abs().sum().item()
    assert grads["none"] == 0.0 and grads["batch"] > 1e-3, grads
    one = _head(16, 8, 2, 0.0, "batch").train()
    assert one(feats[:1]).shape == (1, 2)  # a training batch of one sample uses the running statistics
    with pytest.raises(ValueError, match="head_norm"):
        _head(16, 8, 2, 0.0, "layer")


def test_a_none_head_loads_the_first_v2_checkpoints():
    """head_norm=none is the layout of the runs made before the head's BatchNorm (same state-dict keys)."""
    old = {"0.weight", "0.bias", "3.weight", "3.bias"}
    assert set(_head(16, 8, 2, 0.0, "none").state_dict()) == old


@pytest.mark.parametrize(
    ("make", "c"),
    [(lambda: ResNetDetector(in_channels=1, **SMALL), 1),
     (lambda: ResNetDetector(in_channels=2, coord_channels=True, **SMALL), 2),
     (lambda: ResNetDualStream(in_channels=3, **SMALL), 3),
     (lambda: BaselineCNN(in_channels=1), 1), (lambda: DualStreamCNN(in_channels=2), 2)],
)
def test_each_model_overfits_a_tiny_batch(make, c):
    torch.manual_seed(0)
    net = make()
    x, y = torch.randn(16, c, 32, 32), torch.arange(16) % 2
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.05


def _ring_task(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 32 x 32 rings; label 1 adds a faint blob at a random point of the ring."""
    yy, xx = np.mgrid[:32, :32] - 15.5
    r = np.hypot(xx, yy)
    ring = np.exp(-0.5 * ((r - 10) / 1.5) ** 2)
    y = rng.integers(0, 2, n)
    x = ring[None] + 0.15 * rng.standard_normal((n, 32, 32))
    phi = rng.uniform(0, 2 * np.pi, n)
    cx, cy = 10 * np.cos(phi), 10 * np.sin(phi)
    blob = np.exp(-0.5 * ((xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2) / 1.2**2)
    x = x + 0.6 * y[:, None, None] * blob
    return torch.tensor(x[:, None], dtype=torch.float32), torch.tensor(y)


@pytest.mark.parametrize("seed", [0])
def test_bf16_autocast_reaches_the_fp32_auc(seed):
    """The same network, data and steps in fp32 and in bf16 autocast (+ channels_last): AUCs agree."""
    rng = np.random.default_rng(seed)
    x_tr, y_tr = _ring_task(1024, rng)
    x_te, y_te = _ring_task(512, rng)
    aucs = {}
    for mode in ("fp32", "bf16"):
        torch.manual_seed(seed)
        net = ResNetDetector(in_channels=1, **SMALL)
        if mode == "bf16":
            net = net.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
        for step in range(64):
            i = slice((step % 16) * 64, (step % 16 + 1) * 64)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
                loss = torch.nn.functional.cross_entropy(net(x_tr[i]), y_tr[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            p = torch.softmax(net(x_te).float(), dim=1)[:, 1]
        aucs[mode] = float(binary_auroc(p, y_te))
    assert aucs["fp32"] > 0.9, aucs
    assert abs(aucs["bf16"] - aucs["fp32"]) < 0.03, aucs


def test_precision_and_layout_follow_the_cpu_flags():
    amx, plain = frozenset({"avx2", "amx_bf16"}), frozenset({"avx2", "avx512f"})
    assert resolve_precision("auto", "cpu", amx) == "bf16-mixed"
    assert resolve_precision("auto", "cpu", plain) == "32-true"
    assert resolve_precision("32-true", "cpu", amx) == "32-true"
    assert resolve_channels_last("auto", "cpu", frozenset({"avx512_bf16"})) is True
    assert resolve_channels_last("auto", "cpu", plain) is False
    assert resolve_channels_last(True, "cpu", plain) is True
    with pytest.raises(ConfigError, match="model.channels_last"):
        resolve_channels_last("yes", "cpu", plain)


def test_cosine_schedule_warms_up_then_decays():
    f = [cosine_factor(s, 100, 0.1, 0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] == pytest.approx(0.01, abs=1e-3)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
    sched = build_scheduler(opt, "onecycle", 50, 0.2, 0.0)
    lrs = []
    for _ in range(50):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert max(lrs) == pytest.approx(2e-3, rel=0.05) and lrs[-1] < 1e-4
    with pytest.raises(ConfigError, match="lr_schedule"):
        check_schedule("step", 0.0, 0.0)
    with pytest.raises(ConfigError, match="warmup_frac"):
        check_schedule("cosine", 1.5, 0.0)


@pytest.mark.parametrize(("model", "channels", "c"),
                         [("resnet", "flux", 1), ("resnet", "flux_velocity", 2),
                          ("resnet_dual", "flux_velocity_weight", 4)])
def test_model_configs_build(model, channels, c, compose_train):
    cfg = compose_train(f"model={model}", f"data.channels={channels}")
    net = instantiate(cfg.model.net, in_channels=c, _convert_="all")
    assert net(torch.zeros(2, c, 64, 64)).shape == (2, 2)
    opt = instantiate(cfg.model.optimizer)(net.parameters())
    assert isinstance(opt, torch.optim.AdamW)
    make = instantiate(cfg.model.module, _convert_="all")
    module = make(net=net, optimizer=instantiate(cfg.model.optimizer))
    assert module.lr_schedule == "cosine" and module.channels_last_setting == "auto"


def test_samples_seen_survive_a_checkpoint():
    from lensml.models.module import LensClassifier

    m = LensClassifier(ResNetDetector(in_channels=1, **SMALL))
    m.samples_seen = 4096
    ckpt: dict = {}
    m.on_save_checkpoint(ckpt)
    fresh = LensClassifier(ResNetDetector(in_channels=1, **SMALL))
    fresh.on_load_checkpoint(ckpt)
    assert fresh.samples_seen == 4096
    with pytest.raises(ConfigError, match="model.channels_last"):
        LensClassifier(ResNetDetector(in_channels=1, **SMALL), channels_last="maybe")

import pytest
import torch

from lensml.models.cnn import BaselineCNN, DualStreamCNN


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_baseline_architecture_and_shapes():
    net = BaselineCNN(in_channels=1)
    # conv 1->16, 16->32, 32->64 (3x3 + bias), Linear 64->32, 32->2
    enc = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (64 * 32 * 9 + 64)
    assert n_params(net) == enc + (64 * 32 + 32) + (32 * 2 + 2)
    assert net(torch.zeros(3, 1, 64, 64)).shape == (3, 2)
    assert BaselineCNN(in_channels=2)(torch.zeros(2, 2, 32, 32)).shape == (2, 2)


def test_dual_stream_architecture_and_stream_separation():
    net = DualStreamCNN(in_channels=2)
    enc = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (64 * 32 * 9 + 64)
    assert n_params(net) == 2 * enc + (128 * 64 + 64) + (64 * 2 + 2)
    x = torch.randn(4, 2, 64, 64)
    assert net(x).shape == (4, 2)
    # the velocity stream only sees channel 1: silencing it makes the output independent of channel 1
    for p in net.velocity_encoder.parameters():
        torch.nn.init.zeros_(p)
    x2 = x.clone()
    x2[:, 1] = torch.randn(4, 64, 64)
    assert torch.allclose(net(x), net(x2))
    x3 = x.clone()
    x3[:, 0] += 1.0
    assert not torch.allclose(net(x), net(x3))


def test_dual_stream_refuses_one_channel():
    with pytest.raises(ValueError, match="2 input channels"):
        DualStreamCNN(in_channels=1)


@pytest.mark.parametrize("pool", ["avg", "max"])
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_encoder_variants_shapes_and_pooling(pool: str, norm: str) -> None:
    from lensml.models.cnn import BaselineCNN, ConvEncoder, DualStreamCNN

    torch.manual_seed(0)
    x = torch.randn(3, 2, 64, 64)
    assert BaselineCNN(in_channels=2, global_pool=pool, norm=norm)(x).shape == (3, 2)
    assert DualStreamCNN(global_pool=pool, norm=norm)(x).shape == (3, 2)
    enc = ConvEncoder(1, global_pool=pool, norm=norm).eval()
    # a single bright pixel: max pooling keeps a response that averaging dilutes over the 8x8 map
    spot = torch.zeros(1, 1, 64, 64)
    spot[0, 0, 30, 30] = 10.0
    feats = enc.features(spot)
    pooled = enc(spot)
    expect = feats.amax(dim=(2, 3)) if pool == "max" else feats.mean(dim=(2, 3))
    assert torch.allclose(pooled, expect)


def test_encoder_refuses_unknown_pool_and_norm() -> None:
    from lensml.models.cnn import ConvEncoder

    with pytest.raises(ValueError, match="global_pool"):
        ConvEncoder(1, global_pool="median")
    with pytest.raises(ValueError, match="norm"):
        ConvEncoder(1, norm="layer")

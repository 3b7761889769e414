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


@pytest.mark.parametrize("mode", ["flux_velocity", "flux_velocity_mask", "flux_velocity_weight",
                                  "flux_shuffled_velocity_mask", "flux_shuffled_velocity_weight"])
def test_dual_stream_routes_flux_to_one_stream_and_the_velocity_side_to_the_other(mode: str) -> None:
    from lensml.data.channels import n_channels

    c = n_channels(mode)
    net = DualStreamCNN(in_channels=c)
    enc = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (64 * 32 * 9 + 64)
    # only the velocity stream's first convolution grows: 16 x 9 weights per extra channel
    assert n_params(net) == 2 * enc + 16 * 9 * (c - 2) + (128 * 64 + 64) + (64 * 2 + 2)
    assert net.flux_encoder.features[0].in_channels == 1
    assert net.velocity_encoder.features[0].in_channels == c - 1
    torch.manual_seed(0)
    x = torch.randn(3, c, 32, 32)
    assert net(x).shape == (3, 2)
    flux, velocity_side = [0], list(range(1, c))
    for silenced, seen, unseen in (("velocity_encoder", flux, velocity_side),
                                   ("flux_encoder", velocity_side, flux)):
        probe = DualStreamCNN(in_channels=c)
        probe.load_state_dict(net.state_dict())
        for p in getattr(probe, silenced).parameters():
            torch.nn.init.zeros_(p)
        x2 = x.clone()
        x2[:, unseen] = torch.randn(3, len(unseen), 32, 32)  # only the silenced stream sees these: no effect
        assert torch.allclose(probe(x), probe(x2))
        x3 = x.clone()
        x3[:, seen] += 1.0  # the live stream sees these: the output changes
        assert not torch.allclose(probe(x), probe(x3))
    # every velocity-side channel (mask, weight included) reaches the velocity stream
    for ch in range(1, c):
        x4 = x.clone()
        x4[:, ch] += 1.0
        assert not torch.allclose(net(x), net(x4))


@pytest.mark.parametrize("c", [1, 2, 3, 4])
def test_baseline_takes_any_channel_count(c: int) -> None:
    assert BaselineCNN(in_channels=c)(torch.zeros(2, c, 32, 32)).shape == (2, 2)

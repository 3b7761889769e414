"""Small residual networks for a local perturbation of a ring: ``ResNetDetector`` (one stream: flux only or
early fusion of any channel set) and ``ResNetDualStream`` (a flux stream and a velocity stream, fused).

Input: (B, C, N, N) float32 channels as built by ``lensml.data.channels`` (flux first when present).
Output: (B, n_classes) logits; class 1 = subhalo present.

Why this shape (the seed CNN's limits, issue 13): a stride-2 stem and three stages of basic residual blocks
(widths 32-64-128, one block each by default; stride 2 between stages) give a receptive field of 47
input pixels (2.35" at 0.05"/pix; 79 with two blocks per stage), the size of the 2" ring; BatchNorm lets
it train at a high learning rate; the head sees the global *max* and *average* of the last feature map side
by side, so a local anomaly is not diluted by the field.
Optional coordinate channels (``coord_channels``: x, y in [-1, 1], CoordConv) tell the network where on the
grid it looks (the ring's radius is fixed by theta_E ~ 1").

Fair comparisons (flux-only vs flux+velocity): with ``ResNetDetector`` only the stem's input channels differ
(``data.channels=flux`` vs ``flux_velocity``): same trunk, same head, +144 x w0 weights. ``ResNetDualStream``
gives each stream the same widths as ``ResNetDetector``; its flux-only twin is ``ResNetDetector`` on flux with
the same widths (the dual model has a second trunk: compare it at equal per-stream width, or against
early fusion). Train both with the same ``data.n_train x trainer.max_epochs`` (samples seen).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv + BatchNorm, ReLU, identity (or 1x1 strided projection) shortcut (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


def coord_grid(x: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) coordinate channels x (columns), y (rows) in [-1, 1], dtype/device/layout of ``x``."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy])[None].expand(b, 2, h, w)


class ResNetTrunk(nn.Module):
    """Stem (3x3 conv, stride ``stem_stride``, BN, ReLU), then ``blocks[i]`` basic blocks of width
    ``widths[i]`` per stage (stride 2 at the start of every stage after the first).
    (B, C, N, N) -> (B, widths[-1], n, n)."""

    def __init__(
        self,
        in_channels: int,
        widths: Sequence[int] = (32, 64, 128),
        blocks: Sequence[int] = (1, 1, 1),
        stem_stride: int = 2,
        coord_channels: bool = False,
    ) -> None:
        super().__init__()
        if len(blocks) != len(widths) or min(blocks) < 1 or min(widths) < 1:
            raise ValueError(f"model.net.widths={list(widths)} and model.net.blocks={list(blocks)} must have "
                             "the same length and positive entries, e.g. widths=[32,64,128] blocks=[1,1,1]")
        self.coord_channels = bool(coord_channels)
        c0 = int(widths[0])
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels + 2 * self.coord_channels, c0, 3, stride=stem_stride, padding=1,
                      bias=False),
            nn.BatchNorm2d(c0),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        c = c0
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for k in range(int(n)):
                layers.append(BasicBlock(c, int(w), stride=2 if (i > 0 and k == 0) else 1))
                c = int(w)
        self.stages = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.coord_channels:
            x = torch.cat([x, coord_grid(x)], dim=1)
        return self.stages(self.stem(x))


def max_avg_pool(h: torch.Tensor) -> torch.Tensor:
    """(B, C, n, n) -> (B, 2C): global max then global average of each feature map."""
    return torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3))], dim=1)


HEAD_NORMS: tuple[str, ...] = ("batch", "none")


class HeadBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that also takes a training batch of one sample (it then uses the running statistics)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            False, 0.0, self.eps)
        return super().forward(x)


def _head(in_dim: int, hidden: int, n_classes: int, dropout: float, norm: str = "batch") -> nn.Sequential:
    """Pooled features -> Linear -> [BatchNorm] -> ReLU -> Dropout -> Linear.

    ``norm="batch"`` keeps every hidden unit's pre-activation centred on the batch, so a unit cannot go dead
    for all inputs. Without it (``"none"``, the first v2 runs) the hidden ReLUs all died when the curriculum
    moved from the fixed lens to the target priors (their input distribution shifted) and the network
    predicted a constant from then on (validation AUC 0.5; found in early-fusion flux + velocity runs).
    """
    if norm not in HEAD_NORMS:
        raise ValueError(f"model.net.head_norm={norm!r} is unknown; use one of {list(HEAD_NORMS)}")
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden, bias=norm == "none")]
    if norm == "batch":
        layers.append(HeadBatchNorm(hidden))
    layers += [nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_classes)]
    return nn.Sequential(*layers)


class ResNetDetector(nn.Module):
    """One residual trunk on all input channels (flux only, or early fusion), max+avg pool, MLP head."""

    n_streams = 1

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (32, 64, 128),
        blocks: Sequence[int] = (1, 1, 1),
        stem_stride: int = 2,
        coord_channels: bool = False,
        hidden: int = 64,
        n_classes: int = 2,
        dropout: float = 0.0,
        head_norm: str = "batch",
    ) -> None:
        super().__init__()
        self.trunk = ResNetTrunk(in_channels, widths, blocks, stem_stride, coord_channels)
        self.head = _head(2 * self.trunk.out_channels, hidden, n_classes, dropout, head_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(max_avg_pool(self.trunk(x)))


class ResNetDualStream(nn.Module):
    """Flux trunk on channel 0 and velocity trunk on channels 1..C-1 (velocity [, mask, weight]), the same
    widths each; their last feature maps are concatenated and fused by a 1x1 conv + BN + ReLU (so the head can
    see where both channels respond), then max+avg pooled and classified."""

    n_streams = 2

    def __init__(
        self,
        in_channels: int = 2,
        widths: Sequence[int] = (32, 64, 128),
        blocks: Sequence[int] = (1, 1, 1),
        stem_stride: int = 2,
        coord_channels: bool = False,
        hidden: int = 64,
        n_classes: int = 2,
        dropout: float = 0.0,
        head_norm: str = "batch",
    ) -> None:
        super().__init__()
        if in_channels < 2:
            raise ValueError("ResNetDualStream needs >= 2 input channels (flux, then velocity [, mask, "
                             f"weight]), got {in_channels}")
        self.flux_trunk = ResNetTrunk(1, widths, blocks, stem_stride, coord_channels)
        self.velocity_trunk = ResNetTrunk(in_channels - 1, widths, blocks, stem_stride, coord_channels)
        c = self.flux_trunk.out_channels
        self.fuse = nn.Sequential(nn.Conv2d(2 * c, c, 1, bias=False), nn.BatchNorm2d(c),
                                  nn.ReLU(inplace=True))
        self.head = _head(2 * c, hidden, n_classes, dropout, head_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.flux_trunk(x[:, :1]), self.velocity_trunk(x[:, 1:])], dim=1)
        return self.head(max_avg_pool(self.fuse(h)))

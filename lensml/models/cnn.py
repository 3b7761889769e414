"""The two CNNs: ``BaselineCNN`` (one stream) and ``DualStreamCNN`` (flux and velocity streams).

Input: (B, C, N, N) float32, channels as built by ``lensml.data.channels``: flux first (when present), then
the velocity-side channels (velocity, then mask and weight in the modes that have them).
Output: (B, n_classes) logits; class 1 = subhalo present.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

POOLS = ("avg", "max")
NORMS = ("none", "batch")


class ConvEncoder(nn.Module):
    """Conv 3x3 + ReLU + max-pool 2x2 per width (default 16 -> 32 -> 64), then global pooling.

    Maps (B, in_channels, N, N) to (B, widths[-1]). ``global_pool="avg"`` (the seed architecture) averages the
    last feature map; ``"max"`` keeps its strongest response (a local anomaly is not diluted by the field).
    ``norm="batch"`` adds BatchNorm after each convolution.
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (16, 32, 64),
        global_pool: str = "avg",
        norm: str = "none",
    ) -> None:
        super().__init__()
        if global_pool not in POOLS:
            raise ValueError(f"model.net.global_pool={global_pool!r}: use one of {POOLS}")
        if norm not in NORMS:
            raise ValueError(f"model.net.norm={norm!r}: use one of {NORMS}")
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers.append(nn.Conv2d(c, w, kernel_size=3, padding=1, bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(w))
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.global_pool = global_pool
        self.out_dim = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return h.amax(dim=(2, 3)) if self.global_pool == "max" else h.mean(dim=(2, 3))


def _head(in_dim: int, hidden: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_classes)
    )


class BaselineCNN(nn.Module):
    """One conv stream on all input channels, Linear 64 -> 32 -> 2 (the flux-only baseline when C = 1)."""

    n_streams = 1

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (16, 32, 64),
        hidden: int = 32,
        n_classes: int = 2,
        dropout: float = 0.0,
        global_pool: str = "avg",
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.encoder = ConvEncoder(in_channels, widths, global_pool, norm)
        self.head = _head(self.encoder.out_dim, hidden, n_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class DualStreamCNN(nn.Module):
    """Two conv streams to 64-d each, concatenated, 128 -> 64 -> 2.

    The flux stream sees channel 0 (flux); the velocity stream sees channels 1 .. C-1 (velocity, and the
    mask and weight in the modes that have them). With C = 2 (``flux_velocity``) this is the seed
    architecture, parameter for parameter; each extra channel adds 16 x 9 weights to the velocity stream's
    first convolution.
    """

    n_streams = 2

    def __init__(
        self,
        in_channels: int = 2,
        widths: Sequence[int] = (16, 32, 64),
        hidden: int = 64,
        n_classes: int = 2,
        dropout: float = 0.0,
        global_pool: str = "avg",
        norm: str = "none",
    ) -> None:
        super().__init__()
        if in_channels < 2:
            raise ValueError(
                f"DualStreamCNN needs >= 2 input channels (flux, then velocity [, mask, weight]), "
                f"got {in_channels}"
            )
        self.flux_encoder = ConvEncoder(1, widths, global_pool, norm)
        self.velocity_encoder = ConvEncoder(in_channels - 1, widths, global_pool, norm)
        self.head = _head(2 * self.flux_encoder.out_dim, hidden, n_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.cat([self.flux_encoder(x[:, :1]), self.velocity_encoder(x[:, 1:])], dim=1)
        return self.head(z)

"""Drawn source parameters: one sample's (``SourceDraw``) and a batch's as arrays (``SourceBatch``).

Made by ``lensml.sources.source_priors.SourceSampler``; the disk parameters are ``lensml.sources.disk``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lensml.sources.disk import CLUMP_PARAMS, DISK_PARAMS


@dataclass
class SourceDraw:
    """One sample's source: kind ('disk' or 'template'), centre (arcsec), and its parameters."""

    kind: str
    center_x: float
    center_y: float
    params: dict[str, Any] = field(default_factory=dict)
    template_index: int = -1
    source_id: str = "disk"


@dataclass
class SourceBatch:
    """The sources of a batch as arrays (B,): kind ('disk' / 'template'), centre (arcsec), the disk parameters
    (``disk.DISK_PARAMS`` (B,) and ``CLUMP_PARAMS`` (B, K), meaningful where kind is 'disk'), the template's
    index, placement and id (meaningful where kind is 'template')."""

    kind: np.ndarray
    center_x: np.ndarray
    center_y: np.ndarray
    disk: dict[str, np.ndarray]
    template_index: np.ndarray
    half_size_arcsec: np.ndarray
    rotation_deg: np.ndarray
    flip: np.ndarray
    source_id: np.ndarray

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def take(self, idx: np.ndarray) -> SourceBatch:
        """The sources at positions ``idx``."""
        return SourceBatch(
            **{
                name: ({k: v[idx] for k, v in value.items()} if isinstance(value, dict) else value[idx])
                for name, value in vars(self).items()
            }
        )

    def one(self, i: int) -> SourceDraw:
        """Source ``i`` as a ``SourceDraw``."""
        cx, cy = float(self.center_x[i]), float(self.center_y[i])
        if self.kind[i] == "disk":
            params: dict[str, Any] = {k: float(self.disk[k][i]) for k in DISK_PARAMS}
            params.update({k: self.disk[k][i].copy() for k in CLUMP_PARAMS})
            return SourceDraw("disk", cx, cy, params)
        params = {
            "rotation_deg": float(self.rotation_deg[i]),
            "flip": bool(self.flip[i]),
            "half_size_arcsec": float(self.half_size_arcsec[i]),
        }
        return SourceDraw("template", cx, cy, params, int(self.template_index[i]), str(self.source_id[i]))

    @classmethod
    def from_draws(cls, sources: Sequence[SourceDraw]) -> SourceBatch:
        """The batch of single ``SourceDraw`` s (e.g. edited ones)."""
        b = len(sources)
        disk_rows = [s.params for s in sources if s.kind == "disk"]
        k = max((len(p["clump_amp"]) for p in disk_rows), default=0)
        disk = {name: np.zeros(b) for name in DISK_PARAMS}
        disk.update({name: np.zeros((b, k)) for name in CLUMP_PARAMS})
        disk["clump_sigma_arcsec"][:] = 1.0
        tmpl = {"rotation_deg": np.zeros(b), "flip": np.zeros(b, bool), "half_size_arcsec": np.zeros(b)}
        for i, src in enumerate(sources):
            if src.kind == "disk":
                for name in DISK_PARAMS:
                    disk[name][i] = src.params[name]
                for name in CLUMP_PARAMS:
                    row = np.asarray(src.params[name], dtype=float)
                    disk[name][i, : row.size] = row
            else:
                for name in tmpl:
                    tmpl[name][i] = src.params[name]
        return cls(
            kind=np.array([s.kind for s in sources]),
            center_x=np.array([s.center_x for s in sources], dtype=float),
            center_y=np.array([s.center_y for s in sources], dtype=float),
            disk=disk,
            template_index=np.array([s.template_index for s in sources], dtype=int),
            source_id=np.array([s.source_id for s in sources], dtype=str),
            **tmpl,
        )

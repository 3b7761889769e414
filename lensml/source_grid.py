"""Source grids: a batch of source-plane maps and where they sit, and the numpy reference operations that read
them (positions -> grid units, bilinear sampling). Conventions: ``lensml.sim.render`` (module docstring).

A shared type of ``lensml.sources`` (which makes the grids) and ``lensml.sim`` (which lenses them): it imports
nothing from either, so neither package imports the other through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SourceGrids:
    """A batch of source-plane maps and where they sit (see the module docstring). Shapes: (B, M, M), (B,)."""

    flux: np.ndarray
    velocity_kms: np.ndarray
    center_x: np.ndarray
    center_y: np.ndarray
    half_size_arcsec: np.ndarray
    rotation_deg: np.ndarray = field(default=None)  # type: ignore[assignment]
    flip: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        b = self.flux.shape[0]
        self.center_x = _batch(self.center_x, b)
        self.center_y = _batch(self.center_y, b)
        self.half_size_arcsec = _batch(self.half_size_arcsec, b)
        self.rotation_deg = _batch(0.0 if self.rotation_deg is None else self.rotation_deg, b)
        self.flip = _batch(False if self.flip is None else self.flip, b).astype(bool)

    def __len__(self) -> int:
        return int(self.flux.shape[0])


def _batch(value: object, b: int) -> np.ndarray:
    arr = np.asarray(value)
    return np.broadcast_to(arr, (b,)).copy() if arr.ndim == 0 else arr.reshape(b)


def grid_units(
    bx: np.ndarray, by: np.ndarray, cx: float, cy: float, half: float, rotation_deg: float, flip: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Source-plane positions (arcsec) -> normalised grid coordinates in [-1, 1] (see module docstring)."""
    dx, dy = bx - cx, by - cy
    th = np.deg2rad(rotation_deg)
    ux = dx * np.cos(th) + dy * np.sin(th)
    uy = -dx * np.sin(th) + dy * np.cos(th)
    if flip:
        ux = -ux
    return ux / half, uy / half


def bilinear_sample(image: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Bilinear sample of ``image`` (M, M) at normalised coords, zeros outside (grid_sample convention)."""
    m_y, m_x = image.shape
    ix = ((gx + 1.0) * m_x - 1.0) / 2.0
    iy = ((gy + 1.0) * m_y - 1.0) / 2.0
    x0, y0 = np.floor(ix), np.floor(iy)
    wx1, wy1 = ix - x0, iy - y0
    out = np.zeros(np.shape(gx), dtype=image.dtype)
    for xi, wx in ((x0, 1.0 - wx1), (x0 + 1, wx1)):
        for yi, wy in ((y0, 1.0 - wy1), (y0 + 1, wy1)):
            ok = (xi >= 0) & (xi < m_x) & (yi >= 0) & (yi < m_y)
            vals = image[np.clip(yi, 0, m_y - 1).astype(int), np.clip(xi, 0, m_x - 1).astype(int)]
            out = out + np.where(ok, vals, 0.0) * wx * wy
    return out

"""Preview PNG of a source tensor: flux, velocity (diverging, centred on 0) and the valid mask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lensml.atomic_io import save_figure


def write_preview(
    path: str | Path, tensor: np.ndarray, mask: np.ndarray | None, sidecar: dict[str, Any]
) -> Path:
    """Save a three-panel PNG (flux [0, 1], velocity [-1, 1] with RdBu_r centred on 0, valid mask)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    half = float(sidecar.get("grid_size_arcsec", tensor.shape[-1])) / 2.0
    # MAPS orientation: columns run to the west, so east (left) is at +x offset; show arcsec from the centre.
    extent = (half, -half, -half, half)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), constrained_layout=True)
    valid = mask if mask is not None else (tensor[0] != 0) | (tensor[1] != 0)
    vel = np.where(valid, tensor[1], np.nan)  # invalid pixels drawn grey, not as "systemic" white
    panels = [
        (tensor[0], "magma", 0.0, 1.0, f"{sidecar.get('line', 'line')} flux (p5-p99.5 -> 0-1)"),
        (vel, "RdBu_r", -1.0, 1.0,
         f"velocity / {sidecar.get('vel_scale_kms', float('nan')):.0f} km/s"),
        (valid.astype(float), "gray", 0.0, 1.0, "valid mask"),
    ]
    for ax, (img, cmap, vmin, vmax, title) in zip(axes, panels):
        cm = matplotlib.colormaps[cmap].with_extremes(bad="0.85")
        im = ax.imshow(
            img, origin="lower", cmap=cm, vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest"
        )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("east offset (arcsec)")
        fig.colorbar(im, ax=ax, shrink=0.8)
    axes[0].set_ylabel("north offset (arcsec)")
    fig.suptitle(f"{sidecar.get('plateifu', '?')}  ({sidecar.get('daptype', '')})", fontsize=10)
    try:
        return save_figure(path, fig, dpi=90)
    finally:
        plt.close(fig)

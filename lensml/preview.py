"""``python -m lensml.preview [overrides]``: a PNG grid of simulated samples, smooth vs with subhalo.

Each row is one sample (same lens, source and noise draws): observed flux and velocity without and with the
subhalo, their noiseless differences (subhalo - smooth), and the validity mask; the subhalo is marked (x).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from lensml.atomic_io import save_figure
from lensml.cli import clean_errors
from lensml.sim.instrument import add_noise
from lensml.sim.simulator import LensSimulator, build_simulator

log = logging.getLogger(__name__)

COLUMNS = (
    "flux, smooth",
    "flux, subhalo",
    "Δflux (noiseless)",
    "velocity, smooth",
    "velocity, subhalo",
    "Δvelocity (noiseless)",
    "mask",
)


def render_pair(
    sim: LensSimulator, seed: int, split: str, index: int, force_subhalo: bool = True
) -> dict:
    """Sample ``index`` rendered without and with its subhalo: noisy and noiseless maps + the subhalo draw."""
    batch = sim.draw_batch(seed, split, [index])
    draw, key = batch.one(0), batch.noise_key[0]
    if force_subhalo:
        draw = dataclasses.replace(draw, present=True)
    smooth_draw = dataclasses.replace(draw, present=False)
    clean = sim.render_noiseless([smooth_draw, draw], split)
    # the same noise seed for both: the same noise realisation
    f, v = add_noise(
        clean["flux"],
        clean["velocity"],
        clean["mask"],
        sim.noise,
        [key, key],
        np.repeat(batch.sigma_line_kms, 2),
        np.repeat(batch.peak_snr, 2),
    )
    noisy = [(f[b], v[b]) for b in range(2)]
    return {"clean": clean, "noisy": noisy, "draw": draw}


def preview_figure(
    sim: LensSimulator, seed: int, split: str, indices: list[int], force_subhalo: bool = True
):
    """The matplotlib figure of the preview grid (rows: samples; columns: ``COLUMNS``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    half = 0.5 * sim.n_pix * sim.pixel_scale_arcsec
    extent = (-half, half, -half, half)
    fig, axes = plt.subplots(
        len(indices), len(COLUMNS), figsize=(2.6 * len(COLUMNS), 2.5 * len(indices)), squeeze=False
    )
    for row, index in enumerate(tqdm(indices, desc="preview")):
        pair = render_pair(sim, seed, split, index, force_subhalo)
        clean, (f0, v0), (f1, v1), d = pair["clean"], *pair["noisy"], pair["draw"]
        mask = clean["mask"][1]
        vmax = max(float(np.abs(clean["velocity"]).max()), 1.0)
        dflux = clean["flux"][1] - clean["flux"][0]
        dvel = np.where(mask & clean["mask"][0], clean["velocity"][1] - clean["velocity"][0], 0.0)
        panels = [
            (f0, "magma", None, None),
            (f1, "magma", None, None),
            (dflux, "RdBu_r", -np.abs(dflux).max(), np.abs(dflux).max()),
            (v0, "RdBu_r", -vmax, vmax),
            (v1, "RdBu_r", -vmax, vmax),
            (dvel, "RdBu_r", -max(np.abs(dvel).max(), 1e-3), max(np.abs(dvel).max(), 1e-3)),
            (mask.astype(float), "gray", 0, 1),
        ]
        for col, (img, cmap, lo, hi) in enumerate(panels):
            ax = axes[row, col]
            im = ax.imshow(img, origin="lower", cmap=cmap, vmin=lo, vmax=hi, extent=extent)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            if col > 0:
                ax.plot(d.sub_x, d.sub_y, "x", color="lime", ms=8, mew=1.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(COLUMNS[col], fontsize=9)
        axes[row, 0].set_ylabel(
            f"#{index}: {sim.subhalo.profile} {d.mass_msun:.2g} M$_\\odot$\n"
            f'({d.sub_x:+.2f}, {d.sub_y:+.2f})" {d.source.source_id}',
            fontsize=8,
        )
    fig.suptitle(
        f"lensml preview: seed {seed}, split {split}, {sim.backend} backend; Δ = subhalo - smooth; "
        f'velocity in km/s, field {2 * half:.2f}"',
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def write_preview(cfg: DictConfig) -> Path:
    """Build the simulator from ``cfg`` and write the preview PNG to ``cfg.out``."""
    sim = build_simulator(cfg)
    indices = list(range(int(cfg.first_index), int(cfg.first_index) + int(cfg.n_examples)))
    fig = preview_figure(sim, int(cfg.seed), str(cfg.split), indices, bool(cfg.force_subhalo))
    out = save_figure(cfg.out, fig, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="preview")
@clean_errors
def main(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):
        import torch

        torch.set_num_threads(int(cfg.num_threads))
    out = write_preview(cfg)
    print(f"preview written to {out}")


if __name__ == "__main__":
    main()

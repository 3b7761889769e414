"""MaNGA template sources: the data layer's ``(2, 64, 64)`` source tensors back in physical units.

A template is the flux channel as is (arbitrary units, [0, 1]) and the velocity channel turned back into km/s
relative to systemic: ``v_kms = tensor[1] * vel_scale_kms`` (sidecar; the data layer stored
``(v - vel_median_kms) / vel_scale_kms``, clipped to [-1, 1], so the median is the systemic velocity).
Placement on the source plane (angular span of the 64-pixel grid, rotation, flip, scale) is done by the
renderer through ``lensml.source_grid.SourceGrids``, so every augmentation moves both channels identically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lensml.errors import DataError
from lensml.paths import PROJECT_ROOT, shared_manga_dir

log = logging.getLogger(__name__)

TENSOR_GLOB = "source_tensor_*.npy"


def prepare_command(out_dir: str | Path) -> str:
    """The exact command that makes templates from the shared MaNGA file(s) into ``out_dir``."""
    return f"python -m lensml.prepare_sources maps={shared_manga_dir()} out_dir={out_dir}"


@dataclass(frozen=True)
class TemplateLibrary:
    """Templates of one split: flux (T, M, M), velocity_kms (T, M, M), plateifu ids (T,)."""

    flux: np.ndarray
    velocity_kms: np.ndarray
    plateifu: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.plateifu)


def resolve_template_dir(template_dir: str | Path) -> Path:
    """``template_dir`` as given if it exists, else relative to the project root."""
    path = Path(template_dir).expanduser()
    if path.is_dir() or path.is_absolute():
        return path
    return PROJECT_ROOT / path


def template_files(
    template_dir: str | Path, names: Sequence[str] | None = None, key: str = "source.template_dir"
) -> list[Path]:
    """Tensor files in ``template_dir`` (all, or those whose plateifu / file name is in ``names``)."""
    folder = resolve_template_dir(template_dir)
    files = sorted(folder.glob(TENSOR_GLOB)) if folder.is_dir() else []
    if not files:
        raise DataError(
            f"{key}: no source templates ({TENSOR_GLOB}) in {folder}. Fix: make them with "
            f"`{prepare_command(folder)}`, or set {key}=<folder with source tensors>."
        )
    if names is None:
        return files
    by_id = {f.stem.removeprefix("source_tensor_"): f for f in files}
    chosen = []
    for name in names:
        stem = Path(str(name)).stem.removeprefix("source_tensor_")
        if stem not in by_id:
            raise DataError(
                f"source.templates: template {name!r} not found in {folder} (have {sorted(by_id)}). "
                f"Fix: list existing plateifus or make it with `{prepare_command(folder)}`."
            )
        chosen.append(by_id[stem])
    return chosen


def load_templates(files: Sequence[Path]) -> TemplateLibrary:
    """Load source tensors and convert the velocity channel to km/s (relative to systemic)."""
    from lensml.data.source_tensor import load_source_tensor

    fluxes, vels, ids = [], [], []
    for path in files:
        tensor, sidecar = load_source_tensor(path)
        fluxes.append(tensor[0].astype(np.float64))
        vels.append(tensor[1].astype(np.float64) * float(sidecar["vel_scale_kms"]))
        ids.append(str(sidecar["plateifu"]))
    shapes = {f.shape for f in fluxes}
    if len(shapes) != 1:
        raise DataError(
            f"source templates have different grid sizes {sorted(shapes)}; re-make them with one n_pix."
        )
    log.info("loaded %d source templates", len(ids))
    return TemplateLibrary(np.stack(fluxes), np.stack(vels), tuple(ids))

"""Source parameters drawn from the config priors (``cfg.source``), and the source grids they make.

``source.kind`` picks the source family: ``analytic`` (rotating disk, ``lensml.sources.disk``), ``manga``
(templates, ``lensml.sources.template``) or ``mixed`` (a template with probability ``manga_fraction``).
``source.split_overrides.<split>`` is merged onto the priors of that split (domain-shift tests).

Draw order for one sample (fixed; changing it changes every sample): [mixed: one uniform for the kind],
offset_x, offset_y, then the disk or template parameters in the order of ``DISK_PRIORS`` /
``TEMPLATE_PRIORS``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lensml.errors import ConfigError
from lensml.sim.priors import check_range, draw, support, validate_prior
from lensml.sim.render import SourceGrids, bilinear_sample, grid_units
from lensml.sources.disk import (
    CLUMP_PARAMS,
    DISK_PARAMS,
    DISK_SHAPE_PARAMS,
    disk_extent_arcsec,
    disk_maps,
    disk_maps_on_grid,
)
from lensml.sources.template import TemplateLibrary, load_templates, template_files

SOURCE_KINDS: tuple[str, ...] = ("analytic", "manga", "mixed")
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: Disk priors and their allowed ranges: (low, high, low_open, high_open).
DISK_PRIORS: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "inclination_deg": (0.0, 85.0, False, False),
    "position_angle_deg": (None, None, False, False),
    "scale_radius_arcsec": (0.0, None, True, False),
    "v_max_kms": (0.0, None, False, False),
    "r_turn_arcsec": (0.0, None, True, False),
    "v_sys_kms": (None, None, False, False),
    "sigma0_kms": (0.0, None, False, False),
    "p_bulge": (0.0, 1.0, False, False),
    "bulge_amp": (0.0, None, False, False),
    "bulge_r_eff_arcsec": (0.0, None, True, False),
    "bulge_sersic_n": (0.5, 10.0, False, False),
    "n_clumps": (0.0, 20.0, False, False),
    "clump_r_scale": (0.0, None, False, False),
    "clump_phi_deg": (None, None, False, False),
    "clump_amp": (0.0, None, False, False),
    "clump_sigma_arcsec": (0.0, None, True, False),
}
TEMPLATE_PRIORS: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "rotation_deg": (None, None, False, False),
    "p_flip": (0.0, 1.0, False, False),
    "scale": (0.0, None, True, False),
}


@dataclass
class SourceDraw:
    """One sample's source: kind ('disk' or 'template'), centre (arcsec), and its parameters."""

    kind: str
    center_x: float
    center_y: float
    params: dict[str, Any] = field(default_factory=dict)
    template_index: int = -1
    source_id: str = "disk"


class SourceSampler:
    """Draws source parameters per split and renders batches of source grids (built from ``cfg.source``)."""

    def __init__(self, cfg: Mapping[str, Any], z_source: float, cosmology: str) -> None:
        self.kind = cfg.get("kind", "analytic")
        if self.kind not in SOURCE_KINDS:
            raise ConfigError(f"source.kind: unknown {self.kind!r}; use one of {list(SOURCE_KINDS)}.")
        overrides = cfg.get("split_overrides") or {}
        unknown = set(overrides) - set(SPLITS)
        if unknown:
            raise ConfigError(
                f"source.split_overrides: unknown splits {sorted(unknown)}; use {list(SPLITS)}."
            )
        self.cfg = {s: _merge(cfg, overrides.get(s) or {}) for s in SPLITS}
        self.grid_npix = int(cfg.get("grid_npix", 96))
        if self.grid_npix < 8 or self.grid_npix % 8:
            raise ConfigError(
                f"source.grid_npix={self.grid_npix} must be a multiple of 8 (source grid pixels per side; "
                "keeps every sample's arithmetic independent of its batch), e.g. 96."
            )
        self.z_source, self.cosmology = z_source, cosmology
        self.templates: dict[str, TemplateLibrary] = {}
        for split, c in self.cfg.items():
            self._validate(c, split)
        if self.kind in ("manga", "mixed"):
            self._load_templates()
        clump_hi = (
            max(support(c["n_clumps"])[1] for c in self.cfg.values()) if self.kind != "manga" else 0
        )
        self.max_clumps = int(clump_hi)

    # -- validation -------------------------------------------------------------------------------------
    def _validate(self, c: Mapping[str, Any], split: str) -> None:
        where = "source" if split == "train" else f"source (split {split})"
        for name in ("offset_x_arcsec", "offset_y_arcsec"):
            _need(c, name, where)
            validate_prior(c[name], f"source.{name}")
        if self.kind in ("analytic", "mixed"):
            for name, (lo, hi, lo_open, hi_open) in DISK_PRIORS.items():
                _need(c, name, where)
                check_range(c[name], f"source.{name}", lo, hi, lo_open, hi_open)
        if self.kind in ("manga", "mixed"):
            for name, (lo, hi, lo_open, hi_open) in TEMPLATE_PRIORS.items():
                _need(c, name, where)
                check_range(c[name], f"source.{name}", lo, hi, lo_open, hi_open)
            if c.get("size_kpc") is not None:
                check_range(c["size_kpc"], "source.size_kpc", 0.0, None, True)
            else:
                _need(c, "size_arcsec", where)
                check_range(c["size_arcsec"], "source.size_arcsec", 0.0, None, True)
        if self.kind == "mixed":
            frac = c.get("manga_fraction")
            if not isinstance(frac, int | float) or not 0.0 <= frac <= 1.0:
                raise ConfigError(f"source.manga_fraction={frac!r} must be a number in [0, 1].")

    def _load_templates(self) -> None:
        for split, c in self.cfg.items():
            names = (c.get("templates") or {}).get(split)
            files = template_files(c.get("template_dir", "data/sources"), names)
            self.templates[split] = load_templates(files)

    # -- drawing ----------------------------------------------------------------------------------------
    def draw(self, split: str, rng: np.random.Generator, lens_cx: float, lens_cy: float) -> SourceDraw:
        """Draw one source (order in the module docstring); its centre is the lens centre + offset."""
        c = self.cfg[split]
        kind = self.kind
        if kind == "mixed":
            kind = "manga" if rng.uniform() < float(c["manga_fraction"]) else "analytic"
        cx = lens_cx + draw(c["offset_x_arcsec"], rng)
        cy = lens_cy + draw(c["offset_y_arcsec"], rng)
        if kind == "analytic":
            return SourceDraw("disk", cx, cy, self._draw_disk(c, rng, cx, cy))
        lib = self.templates[split]
        index = int(rng.integers(len(lib)))
        if c.get("size_kpc") is not None:
            size = draw(c["size_kpc"], rng) / _kpc_per_arcsec(self.z_source, self.cosmology)
        else:
            size = draw(c["size_arcsec"], rng)
        params = {
            "rotation_deg": draw(c["rotation_deg"], rng),
            "flip": bool(rng.uniform() < draw(c["p_flip"], rng)),
            "half_size_arcsec": 0.5 * size * draw(c["scale"], rng),
        }
        return SourceDraw("template", cx, cy, params, index, lib.plateifu[index])

    def _draw_disk(
        self, c: Mapping[str, Any], rng: np.random.Generator, cx: float, cy: float
    ) -> dict[str, Any]:
        p: dict[str, Any] = {"center_x": cx, "center_y": cy}
        for name in DISK_SHAPE_PARAMS:
            p[name] = draw(c[name], rng)
        has_bulge = rng.uniform() < draw(c["p_bulge"], rng)
        amp = draw(c["bulge_amp"], rng)
        p["bulge_amp"] = amp if has_bulge else 0.0
        p["bulge_r_eff_arcsec"] = draw(c["bulge_r_eff_arcsec"], rng)
        p["bulge_sersic_n"] = draw(c["bulge_sersic_n"], rng)
        n_clumps = int(draw(c["n_clumps"], rng))
        clumps = np.zeros((4, self.max_clumps))
        clumps[3] = 1.0  # width of unused (amplitude 0) clumps: any finite value
        for k in range(n_clumps):
            clumps[:, k] = (
                draw(c["clump_r_scale"], rng) * p["scale_radius_arcsec"],
                draw(c["clump_phi_deg"], rng),
                draw(c["clump_amp"], rng),
                draw(c["clump_sigma_arcsec"], rng),
            )
        for name, row in zip(CLUMP_PARAMS, clumps):
            p[name] = row
        return p

    # -- evaluation -------------------------------------------------------------------------------------
    def flux_at(self, src: SourceDraw, split: str, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
        """Source-plane flux of one drawn source at positions (bx, by) arcsec (used to place subhaloes)."""
        if src.kind == "disk":
            prm = _batch_params([src.params])
            f, _ = disk_maps(bx[None], by[None], prm)
            return f[0]
        lib = self.templates[split]
        gx, gy = grid_units(
            bx,
            by,
            src.center_x,
            src.center_y,
            src.params["half_size_arcsec"],
            src.params["rotation_deg"],
            src.params["flip"],
        )
        return bilinear_sample(lib.flux[src.template_index], gx, gy)

    def grids(
        self,
        sources: Sequence[SourceDraw],
        split: str,
        array: str = "numpy",
        dtype: Any = None,
        device: Any = "cpu",
        cpu_kernels: bool = True,
    ) -> list[tuple[np.ndarray, SourceGrids]]:
        """Source grids for a batch, grouped by kind: a list of (batch positions, SourceGrids).

        ``array="torch"`` evaluates the analytic disks for the torch backend (``dtype``, ``device``): in
        float32 on the CPU with the compiled kernel (``disk_kernel``, unless ``cpu_kernels=False``; float32
        numpy arrays), otherwise as torch tensors in one pass.
        """
        out = []
        disk_idx = np.array([i for i, s in enumerate(sources) if s.kind == "disk"], dtype=int)
        tmpl_idx = np.array([i for i, s in enumerate(sources) if s.kind == "template"], dtype=int)
        if disk_idx.size:
            out.append(
                (
                    disk_idx,
                    self._disk_grids([sources[i] for i in disk_idx], array, dtype, device, cpu_kernels),
                )
            )
        if tmpl_idx.size:
            lib = self.templates[split]
            chosen = [sources[i] for i in tmpl_idx]
            ti = np.array([s.template_index for s in chosen])
            out.append(
                (
                    tmpl_idx,
                    SourceGrids(
                        flux=lib.flux[ti],
                        velocity_kms=lib.velocity_kms[ti],
                        center_x=np.array([s.center_x for s in chosen]),
                        center_y=np.array([s.center_y for s in chosen]),
                        half_size_arcsec=np.array([s.params["half_size_arcsec"] for s in chosen]),
                        rotation_deg=np.array([s.params["rotation_deg"] for s in chosen]),
                        flip=np.array([s.params["flip"] for s in chosen]),
                    ),
                )
            )
        return out

    def _disk_grids(
        self, sources: Sequence[SourceDraw], array: str, dtype: Any, device: Any, cpu_kernels: bool
    ) -> SourceGrids:
        prm = _batch_params([s.params for s in sources])
        half = disk_extent_arcsec(prm, float(self.cfg["train"].get("grid_half_size_scale", 5.0)))
        m = self.grid_npix
        u = (np.arange(m) + 0.5) / m * 2.0 - 1.0  # pixel centres, align_corners=False
        if array == "torch" and cpu_kernels and _is_cpu_float32(dtype, device):
            from lensml.sources.disk_kernel import disk_grids_f32

            flux, vel = disk_grids_f32(prm, half, m)
        elif array == "torch":
            import torch

            tp = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in prm.items()}
            ut = torch.as_tensor(u, dtype=dtype, device=device)
            h = torch.as_tensor(half, dtype=dtype, device=device)[:, None]
            x = tp["center_x"][:, None] + h * ut[None, :]
            y = tp["center_y"][:, None] + h * ut[None, :]
            flux, vel = disk_maps_on_grid(x, y, tp)
        else:
            x = prm["center_x"][:, None] + half[:, None] * u[None, :]
            y = prm["center_y"][:, None] + half[:, None] * u[None, :]
            flux, vel = disk_maps_on_grid(x, y, prm)
        return SourceGrids(
            flux=flux,
            velocity_kms=vel,
            center_x=prm["center_x"],
            center_y=prm["center_y"],
            half_size_arcsec=half,
        )


def _is_cpu_float32(dtype: Any, device: Any) -> bool:
    import torch

    return dtype in (torch.float32, "float32") and torch.device(device).type == "cpu"


def _batch_params(params: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Per-sample disk parameters stacked to (B,) and (B, K); K = the most clumps any sample has."""
    out = {name: np.array([p[name] for p in params], dtype=float) for name in DISK_PARAMS}
    for name in CLUMP_PARAMS:
        out[name] = np.stack([np.asarray(p[name], dtype=float) for p in params])
    n_used = int((out["clump_amp"] > 0).sum(axis=1).max()) if out["clump_amp"].size else 0
    for name in CLUMP_PARAMS:  # clumps are filled from the front; unused ones have amp 0
        out[name] = out[name][:, :n_used]
    return out


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    out.pop("split_overrides", None)
    for k, v in override.items():
        out[k] = copy.deepcopy(v)
    return out


def _need(c: Mapping[str, Any], name: str, where: str) -> None:
    if c.get(name) is None:
        raise ConfigError(f"source.{name}: missing in {where}; add it to conf/source/<kind>.yaml.")


def _kpc_per_arcsec(z: float, cosmology: str) -> float:
    from lensml.sim.cosmology import get_cosmology

    d_a_kpc = get_cosmology(cosmology).angular_diameter_distance(z).to("kpc").value
    return float(d_a_kpc * math.pi / 180.0 / 3600.0)

"""Source parameters drawn from the config priors (``cfg.source``), and the source grids they make.

``source.kind`` picks the source family: ``analytic`` (rotating disk, ``lensml.sources.disk``), ``manga``
(templates, ``lensml.sources.template``) or ``mixed`` (a template with probability ``manga_fraction``).
``source.split_overrides.<split>`` is merged onto the priors of that split (domain-shift tests).

Every drawn quantity has its own uniform (slot) of the sample's source stream (``COMMON_SLOTS``, then
``DISK_SLOTS`` or ``TEMPLATE_SLOTS``), pushed through its prior by ``lensml.numerics.priors.quantile``, so the
draws of a batch are vectorised and a change to one prior leaves the other draws of a sample unchanged.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lensml.errors import ConfigError
from lensml.numerics.priors import check_range, quantile, support, validate_prior
from lensml.source_grid import SourceGrids, bilinear_sample, grid_units
from lensml.sources.disk import (
    CLUMP_PARAMS,
    DISK_PARAMS,
    DISK_SHAPE_PARAMS,
    disk_extent_arcsec,
    disk_maps,
    disk_maps_on_grid,
)
from lensml.sources.source_batch import SourceBatch, SourceDraw
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
#: Optional disk priors and their defaults: the clumps' own |line-of-sight velocity| (km/s; sign +-1 drawn).
OPTIONAL_DISK_PRIORS: dict[str, tuple[float, tuple[float | None, float | None, bool, bool]]] = {
    "clump_dv_kms": (0.0, (0.0, None, False, False)),
}
TEMPLATE_PRIORS: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "rotation_deg": (None, None, False, False),
    "p_flip": (0.0, 1.0, False, False),
    "scale": (0.0, None, True, False),
}


#: Uniform slots of the source stream: shared, then the disk's or the template's (a sample is one kind).
COMMON_SLOTS: dict[str, int] = {"kind": 0, "offset_x_arcsec": 1, "offset_y_arcsec": 2}
DISK_SLOTS: dict[str, int] = {
    **{name: 3 + i for i, name in enumerate(DISK_SHAPE_PARAMS)},
    "has_bulge": 10,
    "p_bulge": 11,
    "bulge_amp": 12,
    "bulge_r_eff_arcsec": 13,
    "bulge_sersic_n": 14,
    "n_clumps": 15,
}
CLUMP_SLOT0 = 16  # clump k: slots 16 + 4 k + (r_scale, phi, amp, sigma)
#: Clump k's own velocity: slots CLUMP_SLOT0 + 4 K + 2 k + (|dv|, sign), K = the most clumps of the prior.
TEMPLATE_SLOTS: dict[str, int] = {
    "index": 3,
    "size": 4,
    "rotation_deg": 5,
    "flip": 6,
    "p_flip": 7,
    "scale": 8,
}


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
            for name, (default, (lo, hi, lo_open, hi_open)) in OPTIONAL_DISK_PRIORS.items():
                check_range(c.get(name, default), f"source.{name}", lo, hi, lo_open, hi_open)
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
    @property
    def n_slots(self) -> int:
        """Uniforms per sample in the source stream (``COMMON_SLOTS``, ``DISK_SLOTS``, clumps, template)."""
        return max(CLUMP_SLOT0 + 6 * self.max_clumps, max(TEMPLATE_SLOTS.values()) + 1)

    def draw_batch(
        self, split: str, u: np.ndarray, lens_cx: np.ndarray, lens_cy: np.ndarray
    ) -> SourceBatch:
        """The sources of a batch from its uniforms ``u`` (B, ``n_slots``); centres = lens centre + offset."""
        c = self.cfg[split]
        b = u.shape[0]
        if self.kind == "mixed":
            manga = u[:, COMMON_SLOTS["kind"]] < float(c["manga_fraction"])
        else:
            manga = np.full(b, self.kind == "manga")
        cx = lens_cx + quantile(c["offset_x_arcsec"], u[:, COMMON_SLOTS["offset_x_arcsec"]])
        cy = lens_cy + quantile(c["offset_y_arcsec"], u[:, COMMON_SLOTS["offset_y_arcsec"]])
        disk = self._draw_disks(c, u, cx, cy) if self.kind != "manga" else self._no_disks(b, cx, cy)
        index = np.full(b, -1)
        half, rotation, flip = np.zeros(b), np.zeros(b), np.zeros(b, bool)
        source_id = np.full(b, "disk", dtype=object)
        if manga.any():
            lib = self.templates[split]
            t = TEMPLATE_SLOTS
            index = np.where(manga, np.minimum((u[:, t["index"]] * len(lib)).astype(int), len(lib) - 1), -1)
            if c.get("size_kpc") is not None:
                kpc = _kpc_per_arcsec(self.z_source, self.cosmology)
                size = quantile(c["size_kpc"], u[:, t["size"]]) / kpc
            else:
                size = quantile(c["size_arcsec"], u[:, t["size"]])
            rotation = np.where(manga, quantile(c["rotation_deg"], u[:, t["rotation_deg"]]), 0.0)
            flip = manga & (u[:, t["flip"]] < quantile(c["p_flip"], u[:, t["p_flip"]]))
            half = np.where(manga, 0.5 * size * quantile(c["scale"], u[:, t["scale"]]), 0.0)
            source_id[manga] = np.asarray(lib.plateifu, dtype=object)[index[manga]]
        return SourceBatch(
            kind=np.where(manga, "template", "disk"),
            center_x=cx,
            center_y=cy,
            disk=disk,
            template_index=index,
            half_size_arcsec=half,
            rotation_deg=rotation,
            flip=flip,
            source_id=source_id.astype(str),
        )

    def _draw_disks(
        self, c: Mapping[str, Any], u: np.ndarray, cx: np.ndarray, cy: np.ndarray
    ) -> dict[str, np.ndarray]:
        s = DISK_SLOTS
        p: dict[str, np.ndarray] = {"center_x": cx, "center_y": cy}
        for name in DISK_SHAPE_PARAMS:
            p[name] = quantile(c[name], u[:, s[name]])
        has_bulge = u[:, s["has_bulge"]] < quantile(c["p_bulge"], u[:, s["p_bulge"]])
        p["bulge_amp"] = np.where(has_bulge, quantile(c["bulge_amp"], u[:, s["bulge_amp"]]), 0.0)
        p["bulge_r_eff_arcsec"] = quantile(c["bulge_r_eff_arcsec"], u[:, s["bulge_r_eff_arcsec"]])
        p["bulge_sersic_n"] = quantile(c["bulge_sersic_n"], u[:, s["bulge_sersic_n"]])
        n_clumps = quantile(c["n_clumps"], u[:, s["n_clumps"]]).astype(int)
        k = self.max_clumps
        block = u[:, CLUMP_SLOT0 : CLUMP_SLOT0 + 4 * k].reshape(u.shape[0], k, 4)
        used = np.arange(k)[None, :] < n_clumps[:, None]  # clumps fill from the front; unused: amp 0
        p["clump_r_arcsec"] = np.where(
            used, quantile(c["clump_r_scale"], block[..., 0]) * p["scale_radius_arcsec"][:, None], 0.0
        )
        p["clump_phi_deg"] = np.where(used, quantile(c["clump_phi_deg"], block[..., 1]), 0.0)
        p["clump_amp"] = np.where(used, quantile(c["clump_amp"], block[..., 2]), 0.0)
        p["clump_sigma_arcsec"] = np.where(used, quantile(c["clump_sigma_arcsec"], block[..., 3]), 1.0)
        dv = u[:, CLUMP_SLOT0 + 4 * k : CLUMP_SLOT0 + 6 * k].reshape(u.shape[0], k, 2)
        sign = np.where(dv[..., 1] < 0.5, -1.0, 1.0)  # approaching or receding, equally likely
        p["clump_dv_kms"] = np.where(used, sign * quantile(c.get("clump_dv_kms", 0.0), dv[..., 0]), 0.0)
        return p

    def _no_disks(self, b: int, cx: np.ndarray, cy: np.ndarray) -> dict[str, np.ndarray]:
        p = {name: np.zeros(b) for name in DISK_PARAMS} | {"center_x": cx, "center_y": cy}
        return p | {name: np.zeros((b, 0)) for name in CLUMP_PARAMS}

    # -- evaluation -------------------------------------------------------------------------------------
    def flux_at(self, src: SourceDraw, split: str, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
        """Source-plane flux of one drawn source at positions (bx, by) arcsec (used to place subhaloes)."""
        if src.kind == "disk":
            prm = {k: np.asarray(v, dtype=float)[None] for k, v in src.params.items()}
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
        sources: SourceBatch | Sequence[SourceDraw],
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
        batch = sources if isinstance(sources, SourceBatch) else SourceBatch.from_draws(sources)
        out = []
        disk_idx = np.flatnonzero(batch.kind == "disk")
        tmpl_idx = np.flatnonzero(batch.kind == "template")
        if disk_idx.size:
            prm = _used_clumps({k: v[disk_idx] for k, v in batch.disk.items()})
            out.append((disk_idx, self._disk_grids(prm, array, dtype, device, cpu_kernels)))
        if tmpl_idx.size:
            lib = self.templates[split]
            ti = batch.template_index[tmpl_idx]
            out.append(
                (
                    tmpl_idx,
                    SourceGrids(
                        flux=lib.flux[ti],
                        velocity_kms=lib.velocity_kms[ti],
                        center_x=batch.center_x[tmpl_idx],
                        center_y=batch.center_y[tmpl_idx],
                        half_size_arcsec=batch.half_size_arcsec[tmpl_idx],
                        rotation_deg=batch.rotation_deg[tmpl_idx],
                        flip=batch.flip[tmpl_idx],
                    ),
                )
            )
        return out

    def _disk_grids(
        self, prm: dict[str, np.ndarray], array: str, dtype: Any, device: Any, cpu_kernels: bool
    ) -> SourceGrids:
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


def _used_clumps(prm: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Disk parameters with the clump columns cut to the most clumps any sample has (they fill from the
    front; unused ones have amplitude 0)."""
    n_used = int((prm["clump_amp"] > 0).sum(axis=1).max()) if prm["clump_amp"].size else 0
    return prm | {name: prm[name][:, :n_used] for name in CLUMP_PARAMS}


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
    import astropy.cosmology as ac  # the name was checked by the simulator (lens.cosmology)

    d_a_kpc = getattr(ac, cosmology).angular_diameter_distance(z).to("kpc").value
    return float(d_a_kpc * math.pi / 180.0 / 3600.0)

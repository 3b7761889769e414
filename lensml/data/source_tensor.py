"""Source tensors (the v1 data contract): a MaNGA galaxy as a ``(2, 64, 64)`` float32 array + JSON sidecar.

Contract (``FORMAT_VERSION`` 1):

- ``tensor[0]``: emission-line flux normalised to [0, 1]: ``clip((f - p5) / (p99.5 - p5), 0, 1)`` with
  p5 / p99.5 the percentiles of the valid native spaxels (sidecar ``flux_p5`` / ``flux_p99_5``).
- ``tensor[1]``: velocity, ``clip((v - median) / scale, -1, 1)``: median and ``scale`` = p95 of
  |v - median| over the valid native spaxels (km/s, sidecar ``vel_median_kms`` / ``vel_scale_kms``);
  0 = systemic.
- Invalid grid pixels are 0 in both channels. The boolean valid mask on the grid is saved beside the tensor as
  ``source_mask_<plateifu>.npy`` (a valid pixel may also be 0 in flux, below p5; the mask tells them apart).
- Grid: a square centred on the galaxy (OBJRA/OBJDEC), wide enough to enclose every valid spaxel (or
  ``grid_size_arcsec`` when given), cut into ``n_pix`` x ``n_pix`` pixels; the orientation is the MAPS one
  (row to the north, column to the west; see ``lensml.data.maps_reader``). Sidecar: ``grid_size_arcsec``,
  ``grid_pixel_scale_arcsec``.
- Resampling is by exact pixel-area overlap, done so masked spaxels never bleed into valid ones:
  valid fraction = overlap-weighted mean of the valid mask; a grid pixel is valid when that fraction >= 0.5;
  flux = overlap-weighted mean of the *valid* spaxels only; velocity = overlap- and flux-weighted mean of the
  valid spaxels (weights max(flux, 0); plain mean where all those weights are 0).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from lensml.atomic_io import save_npy, write_json
from lensml.data.maps_reader import MapsData
from lensml.data.quality import map_inclination, velocity_plane_fit
from lensml.errors import DataError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
N_PIX = 64
CHANNELS = ("flux", "velocity")
#: Minimum valid native spaxels for percentiles to mean anything.
MIN_VALID_SPAXELS = 20
#: A grid pixel is valid when at least this fraction of its area is covered by valid spaxels.
MIN_COVER = 0.5
_RERUN = "re-run `python -m lensml.prepare_sources`"

SIDECAR_KEYS: tuple[str, ...] = (
    "format_version", "plateifu", "source_file", "daptype", "dapver", "line", "line_channel", "velocity_kind",
    "channels", "n_pix", "flux_unit", "flux_p5", "flux_p99_5", "vel_median_kms", "vel_scale_kms",
    "spaxel_scale_arcsec", "grid_size_arcsec", "grid_pixel_scale_arcsec", "grid_center_pix",
    "grid_valid_fraction", "n_valid_spaxels", "mask_fraction", "inclination_deg", "inclination_source",
    "vel_gradient_kms_per_arcsec", "kin_pa_deg", "reff_arcsec", "ecoopa_deg", "ecooell", "mask_file",
)


def overlap_matrix(src_edges: np.ndarray, dst_edges: np.ndarray) -> np.ndarray:
    """Length of overlap of every destination interval (rows) with every source interval (columns)."""
    lo = np.maximum(dst_edges[:-1, None], src_edges[None, :-1])
    hi = np.minimum(dst_edges[1:, None], src_edges[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def resample_maps(
    flux: np.ndarray,
    vel: np.ndarray,
    valid: np.ndarray,
    center_pix: tuple[float, float],
    half_width_pix: float,
    n_pix: int = N_PIX,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area-overlap resampling of a masked map onto an ``n_pix`` square of half-width ``half_width_pix``.

    Returns (valid fraction, flux, velocity) on the grid; flux and velocity are means over valid spaxels only
    (velocity weighted by max(flux, 0)) and 0 where no valid spaxel overlaps. Pure, vectorised.
    """
    ny, nx = flux.shape
    edges = np.linspace(-half_width_pix, half_width_pix, n_pix + 1)
    wy = overlap_matrix(np.arange(ny + 1) - 0.5, center_pix[0] + edges)
    wx = overlap_matrix(np.arange(nx + 1) - 0.5, center_pix[1] + edges)

    def area_sum(a: np.ndarray) -> np.ndarray:
        return wy @ a @ wx.T

    m = valid.astype(np.float64)
    area_valid = area_sum(m)
    frac = area_valid / (2.0 * half_width_pix / n_pix) ** 2
    flux64 = _safe_div(area_sum(flux * m), area_valid)
    w = np.clip(flux, 0.0, None) * m
    w_sum = area_sum(w)
    vel_weighted = _safe_div(area_sum(w * vel), w_sum)
    vel_plain = _safe_div(area_sum(vel * m), area_valid)
    vel64 = np.where(w_sum > 0, vel_weighted, vel_plain)
    return np.clip(frac, 0.0, 1.0), flux64, vel64


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 1e-12)
    return out


def enclosing_half_width_pix(valid: np.ndarray, center_pix: tuple[float, float]) -> float:
    """Half-width (spaxels) of the smallest square about ``center_pix`` that encloses every valid spaxel."""
    rows, cols = np.nonzero(valid)
    return float(max(np.abs(rows - center_pix[0]).max(), np.abs(cols - center_pix[1]).max()) + 0.5)


def make_source_tensor(
    maps: MapsData,
    n_pix: int = N_PIX,
    grid_size_arcsec: float | None = None,
    min_cover: float = MIN_COVER,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``(2, n_pix, n_pix)`` float32 source tensor and its sidecar dict (module docstring). Pure, no I/O.

    Also puts the boolean grid mask under the sidecar key ``"_mask"`` (an array; ``write_source_tensor`` saves
    it as ``source_mask_<plateifu>.npy`` and drops the key).
    """
    if maps.n_valid < MIN_VALID_SPAXELS:
        raise DataError(
            f"{maps.path}: only {maps.n_valid} valid {maps.line} spaxels (< {MIN_VALID_SPAXELS}); too few to "
            "normalise. Fix: pick another galaxy (see `python -m lensml.inspect_maps`)."
        )
    ok = maps.valid
    f_valid, v_valid = maps.flux[ok], maps.vel_kms[ok]
    p5, p995 = (float(p) for p in np.percentile(f_valid, [5.0, 99.5]))
    v_med = float(np.median(v_valid))
    v_scale = float(np.percentile(np.abs(v_valid - v_med), 95.0))
    if not p995 > p5:
        raise DataError(f"{maps.path}: {maps.line} flux is flat (p5 = p99.5 = {p5}); nothing to normalise.")
    if not v_scale > 0:
        raise DataError(f"{maps.path}: velocity map is constant ({v_med} km/s); no rotation to encode.")

    scale = maps.spaxel_scale_arcsec
    if grid_size_arcsec is None:
        half = enclosing_half_width_pix(ok, maps.center_pix)
    else:
        if grid_size_arcsec <= 0:
            raise DataError(f"grid_size_arcsec={grid_size_arcsec} must be > 0 (null: the enclosing square)")
        half = grid_size_arcsec / scale / 2.0
    frac, flux64, vel64 = resample_maps(maps.flux, maps.vel_kms, ok, maps.center_pix, half, n_pix)
    mask = frac >= min_cover
    tensor = np.zeros((2, n_pix, n_pix), dtype=np.float32)
    tensor[0] = np.where(mask, np.clip((flux64 - p5) / (p995 - p5), 0.0, 1.0), 0.0)
    tensor[1] = np.where(mask, np.clip((vel64 - v_med) / v_scale, -1.0, 1.0), 0.0)

    _, grad, kin_pa = velocity_plane_fit(maps)
    incl, incl_src = map_inclination(maps)
    sidecar: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "plateifu": maps.plateifu,
        "source_file": str(maps.path),
        "daptype": maps.daptype,
        "dapver": maps.dapver,
        "line": maps.line,
        "line_channel": f"C{maps.line_channel:02d}",
        "velocity_kind": maps.velocity_kind,
        "channels": list(CHANNELS),
        "n_pix": n_pix,
        "flux_unit": maps.flux_unit,
        "flux_p5": p5,
        "flux_p99_5": p995,
        "vel_median_kms": v_med,
        "vel_scale_kms": v_scale,
        "spaxel_scale_arcsec": scale,
        "grid_size_arcsec": 2.0 * half * scale,
        "grid_pixel_scale_arcsec": 2.0 * half * scale / n_pix,
        "grid_center_pix": [float(c) for c in maps.center_pix],
        "grid_valid_fraction": float(mask.mean()),
        "n_valid_spaxels": maps.n_valid,
        "mask_fraction": maps.mask_fraction,
        "inclination_deg": incl,
        "inclination_source": incl_src,
        "vel_gradient_kms_per_arcsec": grad,
        "kin_pa_deg": kin_pa,
        "reff_arcsec": maps.reff_arcsec,
        "ecoopa_deg": maps.ecoopa_deg,
        "ecooell": maps.ecooell,
        "mask_file": f"source_mask_{maps.plateifu}.npy",
        "_mask": mask,
    }
    return tensor, sidecar


def tensor_path(out_dir: str | Path, plateifu: str) -> Path:
    return Path(out_dir) / f"source_tensor_{plateifu}.npy"


def write_source_tensor(out_dir: str | Path, tensor: np.ndarray, sidecar: dict[str, Any]) -> Path:
    """Write ``source_tensor_<id>.npy`` + ``.json`` (+ ``source_mask_<id>.npy``); returns the .npy path."""
    _check_tensor(tensor, sidecar.get("n_pix", N_PIX), "tensor to write")
    plateifu = str(sidecar["plateifu"])
    if not re.fullmatch(r"[\w.-]+", plateifu):
        raise DataError(f"plateifu {plateifu!r} cannot be used in a file name")
    meta = {k: v for k, v in sidecar.items() if k != "_mask"}
    mask = sidecar.get("_mask")
    out = tensor_path(out_dir, plateifu)
    if mask is not None:
        save_npy(Path(out_dir) / meta["mask_file"], np.asarray(mask, dtype=bool))
    else:
        meta["mask_file"] = None
    write_json(out.with_suffix(".json"), meta)
    save_npy(out, np.ascontiguousarray(tensor, dtype=np.float32))
    return out


def load_source_tensor(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Load a source tensor ``.npy`` and the sidecar ``.json`` beside it; DataError if missing/mismatched."""
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".npy")
    if not path.is_file():
        raise DataError(
            f"{path}: source tensor not found. Fix: make it with "
            "`python -m lensml.prepare_sources maps=<MAPS file or dir> out_dir=<dir>`."
        )
    side = path.with_suffix(".json")
    if not side.is_file():
        raise DataError(f"{path}: sidecar {side.name} is missing. Fix: {_RERUN}.")
    try:
        tensor = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable .npy ({exc}). Fix: {_RERUN}.") from exc
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{side}: unreadable JSON ({exc}). Fix: {_RERUN}.") from exc
    if not isinstance(sidecar, dict):
        raise DataError(f"{side}: expected a JSON object. Fix: re-run `python -m lensml.prepare_sources`.")
    _check_tensor(tensor, sidecar.get("n_pix", N_PIX), str(path))
    missing = [k for k in SIDECAR_KEYS if k not in sidecar]
    if missing:
        raise DataError(f"{side}: sidecar lacks {missing}. Fix: re-run `python -m lensml.prepare_sources`.")
    stem_id = path.stem.removeprefix("source_tensor_")
    if sidecar["plateifu"] != stem_id:
        raise DataError(
            f"{side}: sidecar is for {sidecar['plateifu']} but the tensor file is for {stem_id}. "
            "Fix: re-run `python -m lensml.prepare_sources` into a clean folder."
        )
    return tensor.astype(np.float32, copy=False), sidecar


def load_source_mask(path: str | Path) -> np.ndarray:
    """The boolean ``(n_pix, n_pix)`` valid mask saved beside a source tensor (``path``: the tensor .npy)."""
    tensor, sidecar = load_source_tensor(path)
    mask_file = sidecar.get("mask_file")
    mask_path = Path(path).with_name(mask_file) if mask_file else None
    if mask_path is None or not mask_path.is_file():
        raise DataError(f"{path}: valid-mask file {mask_file} missing. Fix: {_RERUN}.")
    mask = np.load(mask_path, allow_pickle=False)
    if mask.shape != tensor.shape[1:]:
        raise DataError(f"{mask_path}: mask shape {mask.shape} does not match the tensor {tensor.shape}")
    return mask.astype(bool)


def _check_tensor(tensor: np.ndarray, n_pix: int, what: str) -> None:
    if tensor.shape != (2, n_pix, n_pix) or tensor.dtype != np.float32:
        raise DataError(
            f"{what}: expected float32 (2, {n_pix}, {n_pix}), got {tensor.dtype} {tensor.shape}. "
            "Fix: re-run `python -m lensml.prepare_sources`."
        )
    if not np.isfinite(tensor).all():
        raise DataError(f"{what}: tensor holds NaN/inf. Fix: re-run `python -m lensml.prepare_sources`.")


def prepare_source(
    maps_path: str | Path,
    out_dir: str | Path,
    line: str = "Ha-6564",
    velocity: str = "gas",
    n_pix: int = N_PIX,
    grid_size_arcsec: float | None = None,
    preview: bool = True,
) -> Path:
    """Read one MAPS file; write its tensor, sidecar, mask (and preview); returns the tensor's .npy path."""
    from lensml.data.maps_reader import read_maps

    maps = read_maps(maps_path, line=line, velocity=velocity)
    tensor, sidecar = make_source_tensor(maps, n_pix=n_pix, grid_size_arcsec=grid_size_arcsec)
    out = write_source_tensor(out_dir, tensor, sidecar)
    if preview:
        from lensml.data.previews import write_preview

        png = Path(out_dir) / "previews" / f"preview_{maps.plateifu}.png"
        write_preview(png, tensor, sidecar["_mask"], sidecar)
    log.info("%s -> %s", maps_path, out)
    return out

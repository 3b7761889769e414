"""Quality metrics of one MaNGA emission-line map, and the usable / not-usable verdict.

Conventions: on-sky offsets (x east, y north) in arcsec from the galaxy centre
(``MapsData.sky_offsets_arcsec``); position angles in degrees east of north, in [0, 360); velocities in km/s.

Metrics (all over valid spaxels, see ``lensml.data.maps_reader`` for the valid rule):

- ``mask_fraction``: 1 - n_valid / n_footprint (spaxels with IFU coverage).
- ``frac_valid_in_1.5Re``: fraction of footprint spaxels within elliptical radius 1.5 Re that are valid; the
  ellipse is the DAP's (REFF, ECOOPA, ECOOELL from the primary header); NaN when REFF is absent.
- ``vel_gradient_kms_per_arcsec`` and ``kin_pa_deg``: least-squares plane v = v0 + gx x + gy y; the gradient
  is |(gx, gy)| and the kinematic PA the direction of the receding (positive) side, atan2(gx, gy).
- ``rot_amp_kms``: (p95 - p5) / 2 of the velocities, observed (not corrected for inclination).
- ``flux_vel_corr``: Pearson correlation of flux and velocity; near 0 for a rotating disk, large when the
  "velocity" structure just follows the flux (artefacts, a one-sided detection).
- ``inclination_deg``: Hubble's thick-disk formula cos^2 i = (q^2 - q0^2) / (1 - q0^2), q0 = 0.2, with
  q = 1 - ECOOELL, or q from the flux second moments when ECOOELL is absent (``inclination_source``).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lensml.atomic_io import write_text
from lensml.data.maps_reader import DEFAULT_LINE, MapsData, read_maps
from lensml.errors import DataError

log = logging.getLogger(__name__)

#: Intrinsic axis ratio of a disk seen edge-on (Hubble 1926 thick-disk correction).
Q0_INTRINSIC = 0.2

SUMMARY_COLUMNS: tuple[str, ...] = (
    "file", "plateifu", "status", "error", "daptype", "line", "line_channel", "n_lines", "n_valid",
    "n_footprint", "mask_fraction", "frac_valid_in_1.5Re", "flux_max", "vel_gradient_kms_per_arcsec",
    "rot_amp_kms", "flux_vel_corr", "inclination_deg", "inclination_source", "kin_pa_deg", "phot_pa_deg",
    "reff_arcsec", "spaxel_scale_arcsec", "usable", "reason",
)


@dataclass(frozen=True)
class UsableCriteria:
    """Thresholds of the ``usable`` flag; a map failing any of them is not usable (the reason says which)."""

    min_valid: int = 200
    max_mask_fraction: float = 0.6
    min_frac_valid_in_1p5re: float = 0.6
    min_rot_amp_kms: float = 20.0
    max_abs_flux_vel_corr: float = 0.6


def elliptical_radius_arcsec(maps: MapsData) -> np.ndarray | None:
    """Semi-major-axis radius (arcsec) of each spaxel on the DAP ellipse (ECOOPA, ECOOELL), or None."""
    if maps.ecoopa_deg is None or maps.ecooell is None or not 0 <= maps.ecooell < 1:
        return None
    x, y = maps.sky_offsets_arcsec()
    pa = math.radians(maps.ecoopa_deg)
    along = x * math.sin(pa) + y * math.cos(pa)
    across = x * math.cos(pa) - y * math.sin(pa)
    return np.hypot(along, across / (1.0 - maps.ecooell))


def velocity_plane_fit(maps: MapsData) -> tuple[float, float, float]:
    """Least-squares velocity plane: (v0 km/s, gradient km/s/arcsec, kinematic PA deg east of north)."""
    x, y = maps.sky_offsets_arcsec()
    ok = maps.valid
    design = np.stack([np.ones(ok.sum()), x[ok], y[ok]], axis=1)
    coef, *_ = np.linalg.lstsq(design, maps.vel_kms[ok], rcond=None)
    v0, gx, gy = (float(c) for c in coef)
    return v0, math.hypot(gx, gy), math.degrees(math.atan2(gx, gy)) % 360.0


def axis_ratio_from_moments(maps: MapsData) -> float:
    """Axis ratio b/a of the flux distribution from its second moments (flux clipped at 0)."""
    x, y = maps.sky_offsets_arcsec()
    w = np.clip(maps.flux, 0.0, None) * maps.valid
    if w.sum() <= 0:
        return float("nan")
    xm, ym = (w * x).sum() / w.sum(), (w * y).sum() / w.sum()
    dx, dy = x - xm, y - ym
    cov = np.array([[(w * dx * dx).sum(), (w * dx * dy).sum()], [(w * dx * dy).sum(), (w * dy * dy).sum()]])
    lo, hi = np.linalg.eigvalsh(cov / w.sum())
    return float(math.sqrt(max(lo, 0.0) / hi)) if hi > 0 else float("nan")


def inclination_deg(axis_ratio: float, q0: float = Q0_INTRINSIC) -> float:
    """Disk inclination (deg, 0 = face-on) from the observed axis ratio b/a (Hubble's formula)."""
    if not np.isfinite(axis_ratio):
        return float("nan")
    q = min(max(axis_ratio, q0), 1.0)
    cos2 = (q * q - q0 * q0) / (1.0 - q0 * q0)
    return math.degrees(math.acos(math.sqrt(min(max(cos2, 0.0), 1.0))))


def map_inclination(maps: MapsData) -> tuple[float, str]:
    """Inclination (deg) and where the axis ratio came from ("ECOOELL" or "flux_moments")."""
    if maps.ecooell is not None and 0 <= maps.ecooell < 1:
        return inclination_deg(1.0 - maps.ecooell), "ECOOELL"
    return inclination_deg(axis_ratio_from_moments(maps)), "flux_moments"


def quality_metrics(maps: MapsData, criteria: UsableCriteria | None = None) -> dict[str, Any]:
    """Every metric of the module docstring for one map, plus ``usable`` and ``reason`` ("" when usable)."""
    criteria = criteria or UsableCriteria()
    ok = maps.valid
    flux, vel = maps.flux[ok], maps.vel_kms[ok]
    r_ell = elliptical_radius_arcsec(maps)
    if r_ell is not None and maps.reff_arcsec:
        inner = maps.footprint & (r_ell <= 1.5 * maps.reff_arcsec)
        frac_in = float(ok[inner].mean()) if inner.any() else float("nan")
    else:
        frac_in = float("nan")
    _, grad, kin_pa = velocity_plane_fit(maps) if ok.sum() >= 3 else (0.0, float("nan"), float("nan"))
    p5, p95 = np.percentile(vel, [5, 95])
    corr = float(np.corrcoef(flux, vel)[0, 1]) if ok.sum() >= 3 and flux.std() > 0 and vel.std() > 0 else 0.0
    incl, incl_src = map_inclination(maps)
    row: dict[str, Any] = {
        "file": str(maps.path),
        "plateifu": maps.plateifu,
        "status": "ok",
        "error": "",
        "daptype": maps.daptype,
        "line": maps.line,
        "line_channel": f"C{maps.line_channel:02d}",
        "n_lines": maps.n_lines,
        "n_valid": maps.n_valid,
        "n_footprint": int(maps.footprint.sum()),
        "mask_fraction": maps.mask_fraction,
        "frac_valid_in_1.5Re": frac_in,
        "flux_max": float(flux.max()),
        "vel_gradient_kms_per_arcsec": grad,
        "rot_amp_kms": float(p95 - p5) / 2.0,
        "flux_vel_corr": corr,
        "inclination_deg": incl,
        "inclination_source": incl_src,
        "kin_pa_deg": kin_pa,
        "phot_pa_deg": maps.ecoopa_deg if maps.ecoopa_deg is not None else float("nan"),
        "reff_arcsec": maps.reff_arcsec if maps.reff_arcsec is not None else float("nan"),
        "spaxel_scale_arcsec": maps.spaxel_scale_arcsec,
    }
    reasons = _failed_criteria(row, criteria)
    row["usable"] = not reasons
    row["reason"] = "; ".join(reasons)
    return row


def _failed_criteria(row: dict[str, Any], c: UsableCriteria) -> list[str]:
    out = []
    if row["n_valid"] < c.min_valid:
        out.append(f"n_valid {row['n_valid']} < {c.min_valid}")
    if row["mask_fraction"] > c.max_mask_fraction:
        out.append(f"mask_fraction {row['mask_fraction']:.2f} > {c.max_mask_fraction}")
    frac = row["frac_valid_in_1.5Re"]
    if np.isfinite(frac) and frac < c.min_frac_valid_in_1p5re:
        out.append(f"frac_valid_in_1.5Re {frac:.2f} < {c.min_frac_valid_in_1p5re}")
    if not row["rot_amp_kms"] >= c.min_rot_amp_kms:
        out.append(f"rot_amp_kms {row['rot_amp_kms']:.1f} < {c.min_rot_amp_kms}")
    if abs(row["flux_vel_corr"]) > c.max_abs_flux_vel_corr:
        out.append(f"|flux_vel_corr| {abs(row['flux_vel_corr']):.2f} > {c.max_abs_flux_vel_corr}")
    return out


def quality_row(
    path: str | Path, line: str = DEFAULT_LINE, velocity: str = "gas", criteria: UsableCriteria | None = None
) -> dict[str, Any]:
    """Metrics of one file; a ``DataError`` becomes a row with ``status="error"`` and its message."""
    try:
        return quality_metrics(read_maps(path, line=line, velocity=velocity), criteria)
    except DataError as exc:
        log.debug("%s", exc)
        message = str(exc)
    except Exception as exc:  # noqa: BLE001 - a batch goes on; the traceback goes to the log
        log.exception("%s: unexpected error", path)
        message = f"{path}: unexpected {type(exc).__name__}: {exc}"
    row = {k: "" for k in SUMMARY_COLUMNS}
    row.update(file=str(path), status="error", error=message, usable=False, reason=f"error: {message}")
    return row


def write_quality_summary(rows: Iterable[dict[str, Any]], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``maps_quality_summary.csv`` (a row per file) and ``usable_maps_index.txt`` (usable paths)."""
    out_dir = Path(out_dir)
    rows = list(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SUMMARY_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    csv_path = write_text(out_dir / "maps_quality_summary.csv", buf.getvalue())
    usable = [str(Path(r["file"]).resolve()) for r in rows if r.get("usable") is True]
    index_path = write_text(out_dir / "usable_maps_index.txt", "".join(f"{p}\n" for p in usable))
    return csv_path, index_path


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value

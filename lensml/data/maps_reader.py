"""Read one emission line (flux + velocity) from a MaNGA DAP MAPS file.

Conventions (stated once, here):

- Arrays keep the MAPS pixel layout: ``array[row, col]`` with ``row`` = FITS axis 2 (increasing to the
  north for MaNGA) and ``col`` = FITS axis 1 (RA decreasing, i.e. increasing to the west). Display with
  ``origin="lower"`` for the usual sky view (north up, east left).
- Emission lines are found by **name** in the extension header (keywords ``C01..Cnn``, e.g. ``Ha-6564``),
  never by index: DR17 (DAP 3.1, HYB10-MILESHC-MASTARHC2) files carry 35 lines with H-alpha at C24, older
  (DAP 2.x) files 22 lines with H-alpha at C19.
- Flux is ``EMLINE_GFLUX`` in the file's ``BUNIT`` (1e-17 erg/s/cm^2/spaxel); velocity is ``EMLINE_GVEL`` (or
  ``STELLAR_VEL``) in km/s relative to the DAP input redshift.
- **Valid-spaxel rule**: a spaxel is valid where neither the flux mask nor the velocity mask has any of
  ``reject_bits`` set (default: bit 30, DAP ``DONOTUSE``), both inverse variances are > 0 and both values are
  finite. The DAP sets DONOTUSE on every spaxel it considers unreliable (no coverage, fit failures, ...), so
  clearing DONOTUSE is the DAP's own recommendation.
- A spaxel is *in the footprint* when the flux mask lacks bit 0 (``NOCOV``, no IFU coverage): the map is
  square but the IFU is hexagonal, so masked fractions are counted over the footprint only.
"""

from __future__ import annotations

import gzip
import logging
import re
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from lensml.errors import DataError

log = logging.getLogger(__name__)

#: DAP maskbit meaning "do not use this value" (MANGA_DAPPIXMASK / MANGA_DAPSPECMASK bit 30).
DONOTUSE_BIT = 30
#: DAP maskbit "no IFU coverage": outside the hexagonal footprint.
NOCOV_BIT = 0
DEFAULT_LINE = "Ha-6564"
VELOCITY_KINDS = ("gas", "stellar")
_EMLINE_EXTS = ("EMLINE_GFLUX", "EMLINE_GFLUX_IVAR", "EMLINE_GFLUX_MASK")
_GAS_VEL_EXTS = ("EMLINE_GVEL", "EMLINE_GVEL_IVAR", "EMLINE_GVEL_MASK")
_STELLAR_VEL_EXTS = ("STELLAR_VEL", "STELLAR_VEL_IVAR", "STELLAR_VEL_MASK")
_CHANNEL_KEY = re.compile(r"^C(\d+)$")


@dataclass
class MapsData:
    """One emission line of one MAPS file. Arrays are ``(n_row, n_col)``; see the module docstring."""

    path: Path
    plateifu: str
    daptype: str
    dapver: str
    line: str
    line_channel: int  # 1-based ``Cnn`` number of the line in the EMLINE extensions
    n_lines: int  # number of emission-line channels in the file (22 in DAP 2.x, 35 in DR17)
    velocity_kind: str  # "gas" (EMLINE_GVEL of ``line``) or "stellar" (STELLAR_VEL)
    flux: np.ndarray  # float64, in ``flux_unit``
    flux_ivar: np.ndarray
    vel_kms: np.ndarray  # float64, km/s
    vel_ivar: np.ndarray
    valid: np.ndarray  # bool: the valid-spaxel rule
    footprint: np.ndarray  # bool: inside the IFU coverage (NOCOV clear)
    flux_mask: np.ndarray  # int64, raw DAP mask bits
    vel_mask: np.ndarray
    spaxel_scale_arcsec: float
    sky_matrix_arcsec: np.ndarray  # 2x2: (east, north) arcsec per unit step in (col, row)
    center_pix: tuple[float, float]  # (row, col) of the galaxy centre, 0-based pixel coordinates
    flux_unit: str = ""
    reff_arcsec: float | None = None
    ecoopa_deg: float | None = None  # position angle of the DAP elliptical coordinates, deg east of north
    ecooell: float | None = None  # ellipticity 1 - b/a of the DAP elliptical coordinates
    n_nan_dropped: int = 0  # spaxels the masks call good whose value is not finite
    header: dict = field(default_factory=dict, repr=False)  # a few primary-header values, for provenance

    @property
    def shape(self) -> tuple[int, int]:
        return self.flux.shape  # type: ignore[return-value]

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())

    @property
    def mask_fraction(self) -> float:
        """Fraction of footprint spaxels that are not valid (0 = every covered spaxel usable)."""
        n_fp = int(self.footprint.sum())
        return 1.0 - self.n_valid / n_fp if n_fp else 1.0

    def sky_offsets_arcsec(self) -> tuple[np.ndarray, np.ndarray]:
        """On-sky offsets (x east, y north) in arcsec of every spaxel centre from the galaxy centre."""
        rows, cols = np.indices(self.shape, dtype=np.float64)
        d_col = cols - self.center_pix[1]
        d_row = rows - self.center_pix[0]
        m = self.sky_matrix_arcsec
        return m[0, 0] * d_col + m[0, 1] * d_row, m[1, 0] * d_col + m[1, 1] * d_row


def read_maps(
    path: str | Path,
    line: str = DEFAULT_LINE,
    velocity: str = "gas",
    reject_bits: Sequence[int] = (DONOTUSE_BIT,),
) -> MapsData:
    """Read flux and velocity of emission line ``line`` (e.g. ``"Ha-6564"``) from a MAPS .fits or .fits.gz.

    ``velocity="gas"`` takes the line's own ``EMLINE_GVEL``; ``"stellar"`` takes ``STELLAR_VEL``. Raises
    ``DataError`` naming the file, what is wrong and the fix.
    """
    path = Path(path)
    if velocity not in VELOCITY_KINDS:
        raise DataError(f"velocity={velocity!r} is unknown: use one of {VELOCITY_KINDS} (file {path})")
    if not path.exists():
        raise DataError(
            f"{path}: MAPS file not found. Fix: check the path, or fetch DR17 files with "
            "`python -m lensml.download_manga` (they land in data/maps/)."
        )
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected one MAPS file (manga-<plate>-<ifu>-MAPS-*.fits.gz)")
    try:
        check_complete(path)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*truncated.*")
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                return _read_open(path, hdul, line, velocity, tuple(reject_bits))
    except DataError:
        raise
    except (OSError, EOFError, zlib.error, ValueError, TypeError, UserWarning) as exc:
        raise DataError(
            f"{path}: not a readable FITS file ({type(exc).__name__}: {exc}). Fix: the file is corrupt or "
            "truncated; download it again (`python -m lensml.download_manga`) or check it is a DAP MAPS file."
        ) from exc


def check_complete(path: str | Path, chunk_bytes: int = 1 << 22) -> None:
    """Raise ``EOFError``/``OSError`` if a gzipped file is truncated or corrupt (reads the whole stream)."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return
    with gzip.open(path, "rb") as gz:
        while gz.read(chunk_bytes):
            pass


def find_line_channel(header: fits.Header, line: str, path: Path | str = "") -> tuple[int, int]:
    """1-based channel ``Cnn`` whose value names ``line``; returns ``(channel, n_channels)``.

    Matches the full name case-insensitively (``Ha-6564``); a bare species (``Ha``) matches when unique.
    """
    names: dict[int, str] = {}
    for key, value in header.items():
        m = _CHANNEL_KEY.match(key)
        if m and isinstance(value, str):
            names[int(m.group(1))] = value.strip()
    if not names:
        raise DataError(
            f"{path}: extension {header.get('EXTNAME', '?')} has no channel names (C01..Cnn keywords). "
            "Fix: use a DAP MAPS file (DR15 or later)."
        )
    want = line.strip().lower()
    hits = [c for c, n in names.items() if n.lower() == want]
    if not hits:
        hits = [c for c, n in names.items() if n.lower().split("-")[0] == want]
    if len(hits) != 1:
        listing = ", ".join(names[c] for c in sorted(names))
        what = "is ambiguous" if hits else "is not in this file"
        raise DataError(
            f"{path}: emission line {line!r} {what} (channels: {listing}). "
            f"Fix: set line= to one of these names, e.g. line={DEFAULT_LINE}."
        )
    return hits[0], len(names)


def _read_open(
    path: Path, hdul: fits.HDUList, line: str, velocity: str, reject_bits: tuple[int, ...]
) -> MapsData:
    names = {h.name.upper() for h in hdul}
    need = _EMLINE_EXTS + (_GAS_VEL_EXTS if velocity == "gas" else _STELLAR_VEL_EXTS)
    missing = [n for n in need if n not in names]
    if missing:
        raise DataError(
            f"{path}: FITS file without the DAP extensions {', '.join(missing)}. Fix: give a MaNGA DAP MAPS "
            "file (manga-<plate>-<ifu>-MAPS-<daptype>.fits.gz), not a LOGCUBE or another FITS file."
        )
    ext_flux = hdul["EMLINE_GFLUX"]
    channel, n_lines = find_line_channel(ext_flux.header, line, path)
    idx = channel - 1

    def plane(ext: str, per_line: bool) -> np.ndarray:
        data = hdul[ext].data
        if data is None:
            raise DataError(f"{path}: extension {ext} is empty. Fix: the file is corrupt; download it again.")
        if per_line:
            if data.ndim != 3 or data.shape[0] != n_lines:
                raise DataError(
                    f"{path}: {ext} has shape {data.shape}, expected ({n_lines}, ny, nx) to match its "
                    f"C01..C{n_lines:02d} names. Fix: the file is corrupt; download it again."
                )
            data = data[idx]
        elif data.ndim != 2:
            raise DataError(f"{path}: {ext} has shape {data.shape}, expected a 2-d map.")
        return np.asarray(data)

    flux = plane("EMLINE_GFLUX", True).astype(np.float64)
    flux_ivar = plane("EMLINE_GFLUX_IVAR", True).astype(np.float64)
    flux_mask = plane("EMLINE_GFLUX_MASK", True).astype(np.int64)
    if velocity == "gas":
        vel_ext = hdul["EMLINE_GVEL"]
        v_channel, _ = find_line_channel(vel_ext.header, line, path)
        if v_channel != channel:
            raise DataError(
                f"{path}: {line} is C{channel:02d} in EMLINE_GFLUX but C{v_channel:02d} in EMLINE_GVEL. "
                "Fix: the file is inconsistent; download it again."
            )
        vel = plane("EMLINE_GVEL", True).astype(np.float64)
        vel_ivar = plane("EMLINE_GVEL_IVAR", True).astype(np.float64)
        vel_mask = plane("EMLINE_GVEL_MASK", True).astype(np.int64)
    else:
        vel = plane("STELLAR_VEL", False).astype(np.float64)
        vel_ivar = plane("STELLAR_VEL_IVAR", False).astype(np.float64)
        vel_mask = plane("STELLAR_VEL_MASK", False).astype(np.int64)
    if len({a.shape for a in (flux, flux_ivar, flux_mask, vel, vel_ivar, vel_mask)}) != 1:
        raise DataError(f"{path}: flux and velocity maps differ in shape. Fix: the file is corrupt.")

    reject = 0
    for bit in reject_bits:
        reject |= 1 << int(bit)
    masks_ok = ((flux_mask & reject) == 0) & ((vel_mask & reject) == 0) & (flux_ivar > 0) & (vel_ivar > 0)
    finite = np.isfinite(flux) & np.isfinite(vel) & np.isfinite(flux_ivar) & np.isfinite(vel_ivar)
    valid = masks_ok & finite
    n_nan = int((masks_ok & ~finite).sum())
    footprint = (flux_mask & (1 << NOCOV_BIT)) == 0

    what = f"{line} flux/{'gas' if velocity == 'gas' else 'stellar'} velocity"
    if not valid.any():
        if n_nan:
            raise DataError(
                f"{path}: the {what} is NaN/inf in all {n_nan} spaxels the masks call good; no valid spaxel "
                "left. Fix: the file is corrupt; download it again."
            )
        raise DataError(
            f"{path}: the {what} map is fully masked (no spaxel with DONOTUSE clear and ivar > 0). "
            "Fix: pick another galaxy, or another line= / velocity= for this one."
        )
    if n_nan:
        log.warning("%s: %d spaxels flagged good hold NaN/inf values; treated as invalid", path, n_nan)

    primary = hdul[0].header
    scale, sky_matrix = _spaxel_scale(ext_flux.header, path)
    center = _galaxy_center(ext_flux.header, primary, flux.shape)
    plateifu = str(primary.get("PLATEIFU") or _plateifu_from_name(path)).strip()
    return MapsData(
        path=path,
        plateifu=plateifu,
        daptype=str(primary.get("DAPTYPE", "")).strip(),
        dapver=str(primary.get("VERSDAP", "")).strip(),
        line=ext_flux.header[f"C{channel:02d}"].strip(),
        line_channel=channel,
        n_lines=n_lines,
        velocity_kind=velocity,
        flux=np.where(valid, flux, 0.0),
        flux_ivar=flux_ivar,
        vel_kms=np.where(valid, vel, 0.0),
        vel_ivar=vel_ivar,
        valid=valid,
        footprint=footprint,
        flux_mask=flux_mask,
        vel_mask=vel_mask,
        spaxel_scale_arcsec=scale,
        sky_matrix_arcsec=sky_matrix,
        center_pix=center,
        flux_unit=str(ext_flux.header.get("BUNIT", "")).strip(),
        reff_arcsec=_positive_float(primary.get("REFF")),
        ecoopa_deg=_float_or_none(primary.get("ECOOPA")),
        ecooell=_float_or_none(primary.get("ECOOELL")),
        n_nan_dropped=n_nan,
        header={k: primary[k] for k in ("MANGAID", "OBJRA", "OBJDEC", "DRP3QUAL", "DAPQUAL") if k in primary},
    )


def _spaxel_scale(header: fits.Header, path: Path) -> tuple[float, np.ndarray]:
    """Spaxel size (arcsec) and the (east, north)-per-(col, row) matrix from the celestial WCS."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
        cd = wcs.pixel_scale_matrix * 3600.0  # deg -> arcsec; rows = (RA, Dec), cols = (x, y)
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds on a bad header
        raise DataError(
            f"{path}: cannot read the WCS of EMLINE_GFLUX ({exc}). Fix: the header is corrupt."
        ) from exc
    scale = float(np.sqrt(abs(np.linalg.det(cd))))
    if not np.isfinite(scale) or scale <= 0 or not wcs.has_celestial:
        raise DataError(
            f"{path}: EMLINE_GFLUX has no usable celestial WCS (spaxel scale {scale}). "
            "Fix: the header is corrupt or not a MaNGA MAPS file."
        )
    # Intermediate world x grows with RA (east); y with Dec (north).
    return scale, np.asarray(cd, dtype=np.float64)


def _galaxy_center(header: fits.Header, primary: fits.Header, shape: tuple[int, ...]) -> tuple[float, float]:
    """(row, col) of the galaxy: OBJRA/OBJDEC through the WCS, else CRPIX, else the map centre."""
    ny, nx = shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
        if "OBJRA" in primary and "OBJDEC" in primary:
            col, row = wcs.all_world2pix([[float(primary["OBJRA"]), float(primary["OBJDEC"])]], 0)[0]
        else:
            col, row = float(header["CRPIX1"]) - 1.0, float(header["CRPIX2"]) - 1.0
        if np.isfinite(row) and np.isfinite(col) and 0 <= row < ny and 0 <= col < nx:
            return float(row), float(col)
    except Exception:  # noqa: BLE001 - fall back to the geometric centre
        pass
    return (ny - 1) / 2.0, (nx - 1) / 2.0


def _plateifu_from_name(path: Path) -> str:
    m = re.search(r"manga-(\d+)-(\d+)", path.name)
    return f"{m.group(1)}-{m.group(2)}" if m else path.name.split(".")[0]


def _float_or_none(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _positive_float(value: object) -> float | None:
    out = _float_or_none(value)
    return out if out is not None and out > 0 else None


def list_maps_files(target: str | Path) -> list[Path]:
    """MAPS files named by ``target``: the file itself, or every ``*MAPS*.fits[.gz]`` in a folder (sorted)."""
    target = Path(target)
    if target.is_dir():
        files = sorted(p for p in target.iterdir() if p.is_file() and re.search(r"\.fits(\.gz)?$", p.name))
        maps = [p for p in files if "MAPS" in p.name.upper()]
        return maps or files
    return [target]


def resolve_maps_target(maps: str | Path | None) -> list[Path]:
    """Files for a CLI's ``maps=``: a file, a folder of MAPS files, or None (the shared MaNGA folder)."""
    from lensml.paths import shared_manga_dir

    target = Path(maps).expanduser() if maps not in (None, "") else shared_manga_dir()
    if not target.exists():
        raise DataError(
            f"{target}: no such file or folder (maps=). Fix: give maps=<MAPS file or folder>, or fetch DR17 "
            "files with `python -m lensml.download_manga` (they land in data/maps/)."
        )
    files = list_maps_files(target)
    if not files:
        raise DataError(f"{target}: folder holds no *.fits / *.fits.gz file. Fix: point maps= at MAPS files.")
    return files

"""Write small synthetic MaNGA DAP MAPS files (astropy) in the DR17 35-line or the DAP 2.x 22-line layout.

The galaxy is a thin rotating exponential disk: receding side along ``pa_deg`` (east of north),
inclination ``incl_deg``. Each emission line gets a different flux scale (line k has ``k`` times the H-alpha
flux divided by the H-alpha channel number), so reading the wrong channel is detectable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

# DR17 / DAP 3.1.0 (ELPMPL11 database): 35 lines, H-alpha at C24.
DR17_LINES: tuple[str, ...] = (
    "OII-3727", "OII-3729", "H12-3751", "H11-3771", "Hthe-3799", "Heta-3836", "NeIII-3870", "HeI-3890",
    "Hzet-3890", "NeIII-3969", "Heps-3971", "Hdel-4103", "Hgam-4342", "HeII-4687", "Hb-4863", "OIII-4960",
    "OIII-5008", "NI-5199", "NI-5202", "HeI-5877", "OI-6302", "OI-6365", "NII-6550", "Ha-6564", "NII-6585",
    "SII-6718", "SII-6733", "HeI-7067", "ArIII-7138", "ArIII-7753", "Peta-9017", "SIII-9071", "Pzet-9232",
    "SIII-9533", "Peps-9550",
)
# DAP 2.x (MPL-7 / DR15): 22 lines, H-alpha at C19.
DR15_LINES: tuple[str, ...] = (
    "OII-3727", "OII-3729", "Hthe-3798", "Heta-3836", "NeIII-3869", "Hzet-3890", "NeIII-3968", "Heps-3971",
    "Hdel-4102", "Hgam-4341", "HeII-4687", "Hb-4862", "OIII-4960", "OIII-5008", "HeI-5877", "OI-6302",
    "OI-6365", "NII-6549", "Ha-6564", "NII-6585", "SII-6718", "SII-6732",
)
LAYOUTS = {
    "dr17": ("HYB10-MILESHC-MASTARHC2", "3.1.0", DR17_LINES),
    "dr15": ("HYB10-GAU-MILESHC", "2.2.1", DR15_LINES),
}
DONOTUSE = 1 << 30
NOCOV = 1 << 0
SPAXEL_ARCSEC = 0.5


def disk_model(
    n: int, pa_deg: float, incl_deg: float, v_rot_kms: float, r_disk_arcsec: float, v_sys_kms: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(flux, velocity km/s, x_east arcsec, y_north arcsec) of the disk on an n x n MAPS grid."""
    rows, cols = np.indices((n, n), dtype=float)
    c = (n - 1) / 2.0
    x_east = -(cols - c) * SPAXEL_ARCSEC  # columns run to the west
    y_north = (rows - c) * SPAXEL_ARCSEC
    pa, inc = math.radians(pa_deg), math.radians(incl_deg)
    along = x_east * math.sin(pa) + y_north * math.cos(pa)
    across = x_east * math.cos(pa) - y_north * math.sin(pa)
    r = np.hypot(along, across / math.cos(inc))
    flux = 50.0 * np.exp(-r / r_disk_arcsec)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_theta = np.where(r > 0, along / r, 0.0)
    vel = v_sys_kms + v_rot_kms * math.sin(inc) * cos_theta * np.tanh(r / 1.5)
    return flux, vel, x_east, y_north


def write_synthetic_maps(
    path: str | Path,
    layout: str = "dr17",
    n: int = 32,
    plateifu: str = "99999-1901",
    pa_deg: float = 40.0,
    incl_deg: float = 55.0,
    v_rot_kms: float = 150.0,
    v_sys_kms: float = 10.0,
    r_disk_arcsec: float = 2.5,
    reff_arcsec: float | None = 4.0,
    ecoo: bool = True,
    lines: Sequence[str] | None = None,
    omit_extensions: Sequence[str] = (),
    all_masked: bool = False,
    nan_spaxels: int = 0,
    all_nan: bool = False,
    patchy: float = 0.0,
    seed: int = 0,
) -> Path:
    """Write a synthetic MAPS file (gzipped when ``path`` ends in .gz) and return its path.

    ``patchy``: fraction of footprint spaxels randomly flagged DONOTUSE; ``nan_spaxels``: that many good
    spaxels get NaN H-alpha velocity; ``all_nan``: every H-alpha value is NaN (masks still say good).
    """
    daptype, dapver, default_lines = LAYOUTS[layout]
    names = tuple(lines) if lines is not None else default_lines
    n_lines = len(names)
    rng = np.random.default_rng(seed)
    flux, vel, x_east, y_north = disk_model(n, pa_deg, incl_deg, v_rot_kms, r_disk_arcsec, v_sys_kms)
    footprint = np.hypot(x_east, y_north) <= (n / 2.0 - 1.0) * SPAXEL_ARCSEC
    good = footprint & (flux > 0.5)
    if patchy:
        good &= rng.random((n, n)) >= patchy
    if all_masked:
        good[:] = False
    mask2d = np.where(footprint, 0, NOCOV).astype(np.int32)
    mask2d[~good] |= DONOTUSE

    ha_channel = next((i + 1 for i, nm in enumerate(names) if nm == "Ha-6564"), n_lines)
    scales = np.arange(1, n_lines + 1, dtype=float) / ha_channel
    gflux = (scales[:, None, None] * np.where(good, flux, 0.0)[None]).astype(np.float32)
    gvel = np.repeat(np.where(good, vel, 0.0)[None], n_lines, axis=0).astype(np.float32)
    ivar = np.repeat(np.where(good, 1.0, 0.0)[None], n_lines, axis=0).astype(np.float32)
    mask3d = np.repeat(mask2d[None], n_lines, axis=0)
    if "Ha-6564" in names:
        k = names.index("Ha-6564")
        if all_nan:
            gflux[k][good] = np.nan
            gvel[k][good] = np.nan
        elif nan_spaxels:
            idx = np.flatnonzero(good)[:nan_spaxels]
            gvel[k].flat[idx] = np.nan

    primary = fits.PrimaryHDU()
    h = primary.header
    h["PLATEIFU"] = plateifu
    h["MANGAID"] = "1-000001"
    h["DAPTYPE"] = daptype
    h["VERSDAP"] = dapver
    h["DAPFRMT"] = "MAPS"
    h["OBJRA"] = 180.0
    h["OBJDEC"] = 30.0
    if reff_arcsec is not None:
        h["REFF"] = reff_arcsec
    if ecoo:
        q = math.sqrt(math.cos(math.radians(incl_deg)) ** 2 * (1 - 0.2**2) + 0.2**2)  # inverse Hubble formula
        h["ECOOPA"] = pa_deg % 180.0
        h["ECOOELL"] = 1.0 - q

    def wcs_header(naxis3: int | None) -> fits.Header:
        hd = fits.Header()
        hd["WCSAXES"] = 3 if naxis3 else 2
        hd["CRPIX1"] = (n - 1) / 2.0 + 1.0
        hd["CRPIX2"] = (n - 1) / 2.0 + 1.0
        hd["PC1_1"] = -SPAXEL_ARCSEC / 3600.0
        hd["PC2_2"] = SPAXEL_ARCSEC / 3600.0
        hd["CDELT1"] = 1.0
        hd["CDELT2"] = 1.0
        hd["CUNIT1"] = "deg"
        hd["CUNIT2"] = "deg"
        hd["CTYPE1"] = "RA---TAN"
        hd["CTYPE2"] = "DEC--TAN"
        hd["CRVAL1"] = 180.0
        hd["CRVAL2"] = 30.0
        if naxis3:
            hd["CRPIX3"] = 1.0
            hd["CDELT3"] = 1.0
            hd["CRVAL3"] = 1.0
        hd["MASKNAME"] = "MANGA_DAPPIXMASK"
        return hd

    def cube(name: str, data: np.ndarray, unit: str = "") -> fits.ImageHDU:
        hd = wcs_header(n_lines)
        for i, nm in enumerate(names):
            hd[f"C{i + 1:02d}"] = (nm, f"Data in channel {i + 1}")
        if unit:
            hd["BUNIT"] = unit
        return fits.ImageHDU(data=data, header=hd, name=name)

    def image(name: str, data: np.ndarray, unit: str = "") -> fits.ImageHDU:
        hd = wcs_header(None)
        if unit:
            hd["BUNIT"] = unit
        return fits.ImageHDU(data=data, header=hd, name=name)

    stellar_good = good & (flux > 1.0)
    stellar_mask = np.where(stellar_good, 0, DONOTUSE | np.where(footprint, 0, NOCOV)).astype(np.int32)
    hdus = [
        primary,
        cube("EMLINE_GFLUX", gflux, "1E-17 erg/s/cm^2/spaxel"),
        cube("EMLINE_GFLUX_IVAR", ivar),
        cube("EMLINE_GFLUX_MASK", mask3d),
        cube("EMLINE_GVEL", gvel, "km/s"),
        cube("EMLINE_GVEL_IVAR", ivar.copy()),
        cube("EMLINE_GVEL_MASK", mask3d.copy()),
        image("STELLAR_VEL", np.where(stellar_good, 0.8 * vel, 0.0).astype(np.float32), "km/s"),
        image("STELLAR_VEL_IVAR", stellar_good.astype(np.float32)),
        image("STELLAR_VEL_MASK", stellar_mask),
    ]
    hdus = [hdu for hdu in hdus if hdu.name not in {e.upper() for e in omit_extensions}]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path

"""MAPS reader: both layouts, the valid-spaxel rule, headers, and every bad input as a DataError."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from synthetic_maps import DR17_LINES

from lensml.data.maps_reader import DONOTUSE_BIT, find_line_channel, list_maps_files, read_maps
from lensml.errors import DataError


def test_real_file_finds_halpha_at_c19_and_reads_headers(real_maps):
    m = real_maps
    assert (m.line, m.line_channel, m.n_lines) == ("Ha-6564", 19, 22)
    assert m.plateifu == "7815-3702" and m.daptype == "HYB10-GAU-MILESHC"
    assert m.spaxel_scale_arcsec == pytest.approx(0.5, abs=1e-4)
    assert m.reff_arcsec == pytest.approx(3.77495) and m.ecoopa_deg == pytest.approx(163.245)
    assert m.ecooell == pytest.approx(0.110844)
    assert m.shape == (42, 42)
    assert 700 <= m.n_valid <= 850  # the README says about 770 good H-alpha spaxels
    assert m.center_pix == pytest.approx((21.0, 21.0), abs=0.05)


def test_real_file_valid_rule(real_maps_path, real_maps):
    m = real_maps
    with fits.open(real_maps_path) as h:
        fmask = h["EMLINE_GFLUX_MASK"].data[18]
        vivar = h["EMLINE_GVEL_IVAR"].data[18]
        vel = h["EMLINE_GVEL"].data[18]
    donotuse = (fmask & (1 << DONOTUSE_BIT)) != 0
    assert not (m.valid & donotuse).any()
    assert (vivar[m.valid] > 0).all()
    np.testing.assert_allclose(m.vel_kms[m.valid], vel[m.valid])
    assert (m.flux[~m.valid] == 0).all() and (m.vel_kms[~m.valid] == 0).all()
    v = m.vel_kms[m.valid]
    assert v.min() < -60 and v.max() > 60  # rotates by about +-80 km/s


def test_real_file_stellar_velocity_option(real_maps_path, real_maps):
    s = read_maps(real_maps_path, velocity="stellar")
    assert s.velocity_kind == "stellar"
    assert not np.array_equal(s.vel_kms, real_maps.vel_kms)
    ok = s.valid & real_maps.valid
    assert np.corrcoef(s.vel_kms[ok], real_maps.vel_kms[ok])[0, 1] > 0.7  # stars and gas co-rotate here


def test_dr17_layout_finds_halpha_at_c24(dr17_maps_path):
    m = read_maps(dr17_maps_path)
    assert (m.line, m.line_channel, m.n_lines) == ("Ha-6564", 24, 35)
    assert m.daptype == "HYB10-MILESHC-MASTARHC2" and m.plateifu == "99999-1901"
    with fits.open(dr17_maps_path) as h:
        ha = h["EMLINE_GFLUX"].data[23]
        wrong = h["EMLINE_GFLUX"].data[18]
    np.testing.assert_allclose(m.flux[m.valid], ha[m.valid])
    assert not np.allclose(m.flux[m.valid], wrong[m.valid])


def test_dr15_layout_uncompressed(dr15_maps_path):
    m = read_maps(dr15_maps_path)
    assert (m.line_channel, m.n_lines) == (19, 22)
    assert m.spaxel_scale_arcsec == pytest.approx(0.5)


def test_other_line_and_bare_species_name(dr17_maps_path):
    nii = read_maps(dr17_maps_path, line="nii-6585")
    assert nii.line_channel == 25
    assert read_maps(dr17_maps_path, line="Ha").line_channel == 24
    with pytest.raises(DataError, match="ambiguous"):
        read_maps(dr17_maps_path, line="NII")


def test_find_line_channel_ignores_padding():
    h = fits.Header()
    for i, name in enumerate(DR17_LINES):
        h[f"C{i + 1:02d}"] = name + "  "
    assert find_line_channel(h, "Ha-6564") == (24, 35)


def test_file_without_halpha_is_refused(make_maps):
    lines = [n for n in DR17_LINES if n != "Ha-6564"]
    path = make_maps(lines=lines)
    with pytest.raises(DataError) as exc:
        read_maps(path)
    msg = str(exc.value)
    assert str(path) in msg and "'Ha-6564' is not in this file" in msg and "NII-6585" in msg and "Fix" in msg


@pytest.mark.parametrize(
    "kind, expect",
    [
        ("missing", "not found"),
        ("not_fits", "not a readable FITS"),
        ("truncated", "not a readable FITS"),
        ("no_emline", "without the DAP extensions"),
        ("all_masked", "fully masked"),
        ("all_nan", "NaN"),
        ("bad_velocity_kind", "unknown"),
    ],
)
def test_bad_inputs_raise_data_error_naming_file_and_fix(make_maps, tmp_path, kind, expect):
    kwargs = {}
    if kind == "missing":
        path = tmp_path / "nope.fits.gz"
    elif kind == "not_fits":
        path = tmp_path / "manga-1-2-MAPS-X.fits.gz"
        path.write_text("this is not a FITS file\n")
    elif kind == "truncated":
        good = make_maps()
        path = tmp_path / "manga-1-3-MAPS-X.fits.gz"
        path.write_bytes(good.read_bytes()[:5000])
    elif kind == "no_emline":
        path = tmp_path / "plain.fits"
        fits.HDUList([fits.PrimaryHDU(np.zeros((4, 4)))]).writeto(path)
    elif kind == "bad_velocity_kind":
        path = make_maps()
        kwargs = {"velocity": "dark"}
    else:
        path = make_maps(**{kind: True})
    with pytest.raises(DataError) as exc:
        read_maps(path, **kwargs)
    msg = str(exc.value)
    assert expect in msg and str(path) in msg
    if kind != "bad_velocity_kind":
        assert "Fix" in msg


def test_partial_nans_are_dropped_not_propagated(make_maps):
    m = read_maps(make_maps(nan_spaxels=7))
    assert m.n_nan_dropped == 7
    assert np.isfinite(m.vel_kms).all() and np.isfinite(m.flux).all()
    clean = read_maps(make_maps(name="clean.fits.gz"))
    assert clean.n_valid - m.n_valid == 7


def test_missing_velocity_extension(make_maps):
    path = make_maps(omit_extensions=("EMLINE_GVEL_MASK",))
    with pytest.raises(DataError, match="EMLINE_GVEL_MASK"):
        read_maps(path)
    assert read_maps(path, velocity="stellar").velocity_kind == "stellar"


def test_footprint_and_mask_fraction(dr17_maps_path):
    m = read_maps(dr17_maps_path)
    assert m.footprint.sum() < m.footprint.size  # the hexagon/circle leaves corners uncovered
    assert not (m.valid & ~m.footprint).any()
    assert m.mask_fraction == pytest.approx(1 - m.valid.sum() / m.footprint.sum())


def test_list_maps_files(tmp_path, make_maps):
    a = make_maps(name="manga-1-1-MAPS-A.fits.gz")
    b = make_maps(name="manga-1-2-MAPS-B.fits")
    (tmp_path / "notes.txt").write_text("x")
    assert list_maps_files(tmp_path) == [a, b]
    assert list_maps_files(a) == [a]

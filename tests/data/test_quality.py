"""Quality metrics on the real file (against the DAP's own numbers) and on synthetic disks."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from astropy.io import fits

from lensml.data.maps_reader import read_maps
from lensml.data.quality import (
    SUMMARY_COLUMNS,
    UsableCriteria,
    elliptical_radius_arcsec,
    inclination_deg,
    quality_metrics,
    quality_row,
    write_quality_summary,
)


def _pa_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_elliptical_radius_matches_dap(real_maps_path, real_maps):
    r = elliptical_radius_arcsec(real_maps)
    with fits.open(real_maps_path) as h:
        dap_r = h["SPX_ELLCOO"].data[0]
    np.testing.assert_allclose(r, dap_r, atol=2e-3)


def test_real_file_metrics(real_maps):
    row = quality_metrics(real_maps)
    assert row["status"] == "ok" and row["usable"] is True and row["reason"] == ""
    assert row["line_channel"] == "C19" and row["n_valid"] == real_maps.n_valid
    assert 60 < row["rot_amp_kms"] < 100  # README: about +-80 km/s
    assert row["frac_valid_in_1.5Re"] > 0.9
    assert 0.2 < row["mask_fraction"] < 0.5
    assert abs(row["flux_vel_corr"]) < 0.3
    # the gas kinematic axis lies along the photometric major axis of this disk (mod 180 deg)
    kin, phot = row["kin_pa_deg"], row["phot_pa_deg"]
    assert min(_pa_diff(kin, phot), _pa_diff(kin, phot + 180)) < 20
    assert row["inclination_deg"] == pytest.approx(inclination_deg(1 - 0.110844))
    assert 20 < row["inclination_deg"] < 35
    assert row["vel_gradient_kms_per_arcsec"] > 5
    assert row["flux_max"] == pytest.approx(real_maps.flux[real_maps.valid].max())


@pytest.mark.parametrize("pa_deg", [40.0, 250.0])
def test_synthetic_disk_geometry_is_recovered(make_maps, pa_deg):
    m = read_maps(make_maps(pa_deg=pa_deg, incl_deg=60.0))
    row = quality_metrics(m)
    assert _pa_diff(row["kin_pa_deg"], pa_deg) < 5  # direction of the receding side, not just the axis
    assert row["inclination_deg"] == pytest.approx(60.0, abs=0.5)
    assert row["inclination_source"] == "ECOOELL"


def test_inclination_from_moments_without_header(make_maps):
    m = read_maps(make_maps(incl_deg=60.0, ecoo=False))
    row = quality_metrics(m)
    assert row["inclination_source"] == "flux_moments"
    assert row["inclination_deg"] == pytest.approx(60.0, abs=8)
    assert np.isnan(row["frac_valid_in_1.5Re"])  # no ellipse without ECOOPA / ECOOELL


def test_inclination_formula_limits():
    assert inclination_deg(1.0) == pytest.approx(0.0)
    assert inclination_deg(0.2) == pytest.approx(90.0)
    assert inclination_deg(0.1) == pytest.approx(90.0)
    assert 0 < inclination_deg(0.6) < 90


def test_patchy_map_is_not_usable_with_reason(make_maps):
    row = quality_metrics(read_maps(make_maps(patchy=0.7)))
    assert row["usable"] is False
    assert "mask_fraction" in row["reason"] and "frac_valid_in_1.5Re" in row["reason"]
    strict = quality_metrics(read_maps(make_maps(name="ok.fits.gz")), UsableCriteria(min_rot_amp_kms=1e4))
    assert strict["usable"] is False and strict["reason"].startswith("rot_amp_kms")


def test_summary_files_with_a_bad_file(tmp_path, make_maps, dr17_maps_path):
    bad = tmp_path / "manga-1-1-MAPS-BAD.fits.gz"
    bad.write_bytes(b"garbage")
    patchy = make_maps(name="manga-1-2-MAPS-P.fits.gz", patchy=0.7)
    rows = [quality_row(p) for p in (dr17_maps_path, bad, patchy)]
    csv_path, index_path = write_quality_summary(rows, tmp_path / "out")
    with open(csv_path) as fh:
        table = list(csv.DictReader(fh))
    assert tuple(table[0]) == SUMMARY_COLUMNS and len(table) == 3
    assert [r["status"] for r in table] == ["ok", "error", "ok"]
    assert str(bad) in table[1]["error"] and table[1]["usable"] == "False"
    assert [r["usable"] for r in table] == ["True", "False", "False"]
    assert index_path.read_text().splitlines() == [str(dr17_maps_path.resolve())]

"""Source tensors: the v1 contract on the real file, mask-safe resampling, and the load/write seam."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lensml.data.maps_reader import read_maps
from lensml.data.source_tensor import (
    SIDECAR_KEYS,
    load_source_mask,
    load_source_tensor,
    make_source_tensor,
    resample_maps,
    write_source_tensor,
)
from lensml.errors import DataError


@pytest.fixture(scope="module")
def real_tensor(real_maps):
    return make_source_tensor(real_maps)


def _nearest_raw(maps, sidecar, n=64):
    """The raw map sampled at the grid pixel centres (nearest spaxel): an independent resampling."""
    half = sidecar["grid_size_arcsec"] / maps.spaxel_scale_arcsec / 2.0
    c = (np.arange(n) + 0.5) / n * 2 * half - half
    rows = np.rint(maps.center_pix[0] + c).astype(int)
    cols = np.rint(maps.center_pix[1] + c).astype(int)
    return maps.vel_kms[np.ix_(rows, cols)], maps.valid[np.ix_(rows, cols)]


def test_real_tensor_contract(real_maps, real_tensor):
    tensor, side = real_tensor
    mask = side["_mask"]
    assert tensor.shape == (2, 64, 64) and tensor.dtype == np.float32
    assert tensor[0].min() >= 0 and tensor[0].max() <= 1 and tensor[0].max() == 1.0
    assert tensor[1].min() >= -1 and tensor[1].max() <= 1
    assert (tensor[1] > 0.3).sum() > 100 and (tensor[1] < -0.3).sum() > 100  # both signs, not just noise
    assert (tensor[:, ~mask] == 0).all()
    assert 0.4 < side["grid_valid_fraction"] < 0.9
    assert side["grid_valid_fraction"] == pytest.approx(mask.mean())
    raw, raw_ok = _nearest_raw(real_maps, side)
    sel = mask & raw_ok
    assert np.corrcoef(raw[sel], tensor[1][sel])[0, 1] >= 0.9
    for key in SIDECAR_KEYS:
        assert key in side
    assert side["line"] == "Ha-6564" and side["plateifu"] == "7815-3702"
    assert side["spaxel_scale_arcsec"] == pytest.approx(0.5, abs=1e-4)
    assert side["grid_pixel_scale_arcsec"] == pytest.approx(side["grid_size_arcsec"] / 64)
    assert 12 < side["grid_size_arcsec"] < 22  # encloses the ~17 arcsec of valid H-alpha
    assert side["vel_scale_kms"] > 50 and side["flux_p99_5"] > side["flux_p5"] > 0
    v = real_maps.vel_kms[real_maps.valid]
    assert side["vel_median_kms"] == pytest.approx(np.median(v))
    assert side["vel_scale_kms"] == pytest.approx(np.percentile(np.abs(v - np.median(v)), 95))


def test_normalisation_formula(real_maps, real_tensor):
    tensor, side = real_tensor
    big = make_source_tensor(real_maps, n_pix=64, grid_size_arcsec=side["grid_size_arcsec"])[0]
    np.testing.assert_array_equal(big, tensor)  # same grid, same numbers
    # a grid exactly on the native spaxels (one spaxel per pixel) reproduces the normalised raw map
    m = real_maps
    assert m.center_pix == pytest.approx((21, 21), abs=0.02)  # 43 pixels about spaxel 21 = the spaxel grid
    t43, s43 = make_source_tensor(m, n_pix=43, grid_size_arcsec=43 * m.spaxel_scale_arcsec)
    t, ok = t43[:, :42, :42], s43["_mask"][:42, :42]
    np.testing.assert_array_equal(ok, m.valid)
    want_v = np.clip((m.vel_kms - s43["vel_median_kms"]) / s43["vel_scale_kms"], -1, 1)
    want_f = np.clip((m.flux - s43["flux_p5"]) / (s43["flux_p99_5"] - s43["flux_p5"]), 0, 1)
    np.testing.assert_allclose(t[1][ok], want_v[ok], atol=0.01)  # 0.01-spaxel centre offset mixes a little
    np.testing.assert_allclose(t[0][ok], want_f[ok], atol=0.01)


def test_masked_spaxels_do_not_bleed():
    rng = np.random.default_rng(1)
    n = 30
    valid = rng.random((n, n)) > 0.4
    vel = np.where(valid, 120.0, 0.0)  # uniform rotation speed, zeros where masked
    flux = np.where(valid, rng.uniform(1, 5, (n, n)), 0.0)
    frac, flux64, vel64 = resample_maps(flux, vel, valid, ((n - 1) / 2, (n - 1) / 2), n / 2, 64)
    some = frac > 0
    np.testing.assert_allclose(vel64[some], 120.0)  # a zero-filled average would drag edges towards 0
    assert flux64[some].min() >= 1 - 1e-9
    # area bookkeeping: the grid encloses the map, so total valid area and flux are conserved
    pix_area = (n / 64) ** 2
    assert (frac * pix_area).sum() == pytest.approx(valid.sum())
    assert (flux64 * frac * pix_area).sum() == pytest.approx(flux.sum())


def test_velocity_is_flux_weighted():
    flux = np.array([[1.0, 3.0]])
    vel = np.array([[100.0, -100.0]])
    valid = np.ones((1, 2), bool)
    frac, f1, v1 = resample_maps(flux, vel, valid, (0.0, 0.5), 1.0, 1)
    assert v1[0, 0] == pytest.approx((100 - 300) / 4)
    assert f1[0, 0] == pytest.approx(2.0) and frac[0, 0] == pytest.approx(0.5)


def test_dr17_synthetic_tensor_orientation(dr17_maps_path):
    m = read_maps(dr17_maps_path)  # receding side at PA 40 deg: north-east
    tensor, side = make_source_tensor(m)
    n = 64
    # MAPS orientation: row up = north, column right = west -> north-east is the top-left quadrant
    top_left = tensor[1][n // 2 :, : n // 2]
    bottom_right = tensor[1][: n // 2, n // 2 :]
    assert top_left.mean() > 0.2 and bottom_right.mean() < -0.2
    assert side["line_channel"] == "C24" and side["daptype"] == "HYB10-MILESHC-MASTARHC2"


def test_write_and_load_round_trip(tmp_path, real_tensor):
    tensor, side = real_tensor
    out = write_source_tensor(tmp_path, tensor, side)
    assert out.name == "source_tensor_7815-3702.npy"
    loaded, meta = load_source_tensor(out)
    np.testing.assert_array_equal(loaded, tensor)
    assert "_mask" not in meta and meta["mask_file"] == "source_mask_7815-3702.npy"
    assert json.loads(out.with_suffix(".json").read_text())["plateifu"] == "7815-3702"
    np.testing.assert_array_equal(load_source_mask(out), side["_mask"])
    assert load_source_tensor(out.with_suffix(".json"))[1] == meta


def test_load_errors(tmp_path, real_tensor):
    tensor, side = real_tensor
    with pytest.raises(DataError, match="prepare_sources"):
        load_source_tensor(tmp_path / "source_tensor_1-1.npy")
    out = write_source_tensor(tmp_path, tensor, side)
    other = tmp_path / "source_tensor_1-2.npy"
    other.write_bytes(out.read_bytes())
    with pytest.raises(DataError, match="sidecar source_tensor_1-2.json is missing"):
        load_source_tensor(other)
    other.with_suffix(".json").write_text(out.with_suffix(".json").read_text())
    with pytest.raises(DataError, match="sidecar is for 7815-3702"):
        load_source_tensor(other)
    np.save(out, np.zeros((2, 32, 32), np.float32))
    with pytest.raises(DataError, match=r"expected float32 \(2, 64, 64\)"):
        load_source_tensor(out)


def test_too_few_valid_spaxels(make_maps):
    m = read_maps(make_maps(patchy=0.99, seed=3))
    with pytest.raises(DataError, match="too few"):
        make_source_tensor(m)


def test_stellar_velocity_tensor(real_maps_path):
    tensor, side = make_source_tensor(read_maps(real_maps_path, velocity="stellar"))
    assert side["velocity_kind"] == "stellar" and side["line"] == "Ha-6564"
    assert tensor.shape == (2, 64, 64) and (tensor[1] > 0).any() and (tensor[1] < 0).any()

"""Forecast summaries (``lensml.inference.summary``): M_min and the paired M_min ratio."""

from __future__ import annotations

import numpy as np
import pytest

from lensml.inference.summary import m_min, summarise


def test_m_min_interpolates_a_power_law_exactly() -> None:
    log_m = np.array([8.0, 9.0, 10.0])
    assert m_min(log_m, 5.0 * 10 ** (0.5 * (log_m - 9.0)), 5.0) == pytest.approx(1e9)
    assert m_min(log_m, np.full(3, 0.1), 5.0) is None


def test_the_paired_m_min_ratio_sees_a_gain_the_unpaired_intervals_hide() -> None:
    """Per draw, the second data set's significance is 1.3 x the flux's, with a large draw-to-draw scatter
    shared by both: the unpaired M_min intervals overlap, the paired ratio is 1.3^(1/0.8) with no spread."""
    rng = np.random.default_rng(0)
    n, log_m = 64, np.array([8.0, 9.0, 10.0, 11.0])
    masses = np.broadcast_to(10**log_m, (n, 4)).copy()
    flux = 10 ** rng.normal(0.0, 0.5, (n, 1)) * 5.0 * (masses / 1e9) ** 0.8
    sig = {"flux": {"macro": flux}, "flux+velocity@10": {"macro": 1.3 * flux}}
    s = summarise(sig, masses, 5.0, n_boot=200, seed=1)
    a, b = (s["results"][ds]["macro"]["m_min_ci95"] for ds in ("flux", "flux+velocity@10"))
    assert b[1] > a[0]  # the unpaired intervals overlap
    r = s["results"]["flux+velocity@10"]["macro"]["m_min_ratio"]
    assert r["value"] == pytest.approx(1.3 ** (1 / 0.8))
    assert r["ci95"] == pytest.approx([1.3 ** (1 / 0.8)] * 2) and r["significant"]
    same = summarise({"flux": {"macro": flux}, "copy": {"macro": flux.copy()}}, masses, 5.0, 200, 1)
    r = same["results"]["copy"]["macro"]["m_min_ratio"]
    assert r["value"] == 1.0 and r["ci95"] == [1.0, 1.0] and not r["significant"]
    assert "m_min_ratio" not in same["results"]["flux"]["macro"]


def test_no_ratio_interval_without_a_point_estimate() -> None:
    from lensml.inference.summary import m_min_ratio

    r = m_min_ratio(None, 1e9, [2e9] * 10, [1e9] * 10)
    assert r["value"] is None and r["ci95"] is None and not r["significant"]

"""The forecast study's report section: M50 from a binned detection rate, M_min factors and verdicts."""

from __future__ import annotations

import math

from lensml.analysis.forecast_section import answer_rows, efficiency, verdict
from lensml.analysis.sensitivity import m50


def test_m50_interpolates_the_crossing_and_brackets_it() -> None:
    edges = [8.0, 9.0, 10.0, 11.0]  # centres 8.5, 9.5, 10.5
    out = m50(edges, [0.1, 0.3, 0.7], [0.05, 0.2, 0.6], [0.2, 0.5, 0.8])
    assert math.isclose(math.log10(out["value"]), 10.0)  # halfway between 9.5 (0.3) and 10.5 (0.7)
    assert math.isclose(math.log10(out["lo"]), 9.5)  # the upper bound reaches 0.5 at 9.5
    assert out["lo"] < out["value"] < out["hi"]
    assert m50(edges, [0.1, 0.2, 0.3], [0.0] * 3, [0.4] * 3)["value"] is None  # never reached


def _result(m_flux: float, m_vel: float, ci_flux: list[float], ci_vel: list[float]) -> dict:
    def entry(m: float, ci: list[float]) -> dict:
        return {"m_min_msun": m, "m_min_ci95": ci, "m_min_note": None}

    return {
        "summary": {
            "results": {
                "flux": {"macro_source": entry(m_flux, ci_flux)},
                "flux+velocity@10": {"macro_source": entry(m_vel, ci_vel)},
            }
        }
    }


def test_factor_and_verdict_follow_the_intervals() -> None:
    res = _result(4e9, 2e9, [3e9, 5e9], [1.5e9, 2.5e9])
    rows = answer_rows(res)
    assert rows[1][:2] == ["macro_source", "flux+velocity@10"] and rows[1][3] == "x2.00"
    assert "intervals disjoint" in verdict(res)
    overlapping = _result(4e9, 3.5e9, [3e9, 5e9], [2.5e9, 4.5e9])
    assert "not significant" in verdict(overlapping)


def test_the_paired_ratio_decides_where_the_summary_has_it() -> None:
    """Overlapping unpaired intervals but a paired ratio interval above 1: significant (and the other way)."""
    res = _result(4e9, 3.5e9, [3e9, 5e9], [2.5e9, 4.5e9])
    vel = res["summary"]["results"]["flux+velocity@10"]["macro_source"]
    vel["m_min_ratio"] = {"value": 4 / 3.5, "ci95": [1.05, 1.25], "significant": True}
    assert answer_rows(res)[1][3] == "x1.14 [1.05, 1.25]"
    assert "(paired interval [1.05, 1.25]: significant)" in verdict(res)
    vel["m_min_ratio"]["ci95"] = [0.95, 1.3]
    assert "(paired interval [0.95, 1.30]: not significant at this scale)" in verdict(res)


def test_efficiency_reads_the_headline_rate_vs_mass() -> None:
    res = _result(4e9, 2e9, [3e9, 5e9], [1.5e9, 2.5e9])
    vm = {"edges": [9.0, 10.0, 11.0], "rate": [0.3, 0.7], "lo": [0.2, 0.6], "hi": [0.4, 0.8]}
    sens = {"variants": {"baseline": {"vs_mass": vm}}}
    text = efficiency({"headline": {"sensitivity": sens}}, res)
    assert "baseline: M50 1e+10 M_sun, efficiency 0.4" in text
    assert "no headline study summary" in efficiency({}, res)


def test_a_paired_interval_wholly_below_one_reads_as_a_higher_m_min() -> None:
    res = _result(4e9, 5e9, [3e9, 5e9], [4e9, 6e9])
    vel = res["summary"]["results"]["flux+velocity@10"]["macro_source"]
    vel["m_min_ratio"] = {"value": 0.8, "ci95": [0.7, 0.9], "significant": True}
    assert "(paired interval [0.70, 0.90]: raises M_min)" in verdict(res)

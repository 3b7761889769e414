"""The findings' data: paired differences with verdicts from their intervals, detected bins."""

from __future__ import annotations

from lensml.reporting.findings import Delta, deltas, detected_bins


def _auc(value: float, lo: float, hi: float) -> dict:
    return {"value": value, "ci": [lo, hi]}


def _condition(base: dict, dual: dict, diff: dict, vs_null: dict | None = None) -> dict:
    c = {
        "variants": {"baseline": {"auc": base}, "dual_stream": {"auc": dual}},
        "comparisons": [{"a": "baseline", "b": "dual_stream", "auc": diff}],
    }
    if vs_null is not None:
        c["vs_null"] = vs_null
    return c


HEADLINE = {
    "null_condition": "m1e8",
    "conditions": {
        "m1e8": _condition(_auc(0.6, 0.55, 0.65), _auc(0.6, 0.55, 0.65), _auc(0.0, -0.02, 0.02)),
        "m1e10": _condition(
            _auc(0.62, 0.57, 0.67),
            _auc(0.70, 0.66, 0.74),
            _auc(0.08, 0.03, 0.13),
            {"baseline": _auc(0.02, -0.01, 0.05), "dual_stream": _auc(0.1, 0.05, 0.15)},
        ),
    },
}


def test_a_delta_takes_its_verdict_from_the_interval() -> None:
    assert Delta("c", "a", "b", _auc(0.05, 0.01, 0.09)).verdict == "better (interval > 0)"
    assert Delta("c", "a", "b", _auc(-0.05, -0.09, -0.01)).verdict == "worse (interval < 0)"
    d = Delta("c", "a", "b", _auc(0.01, -0.01, 0.03))
    assert d.verdict == "no significant difference" and d.contains_zero


def test_deltas_follow_the_conditions_and_carry_both_aucs() -> None:
    out = deltas(HEADLINE, [("baseline", "dual_stream"), ("baseline", "velocity_only")])
    assert [d.condition for d in out] == ["m1e8", "m1e10"]  # velocity_only is absent: skipped
    assert out[1].auc_b == _auc(0.70, 0.66, 0.74) and out[1].verdict.startswith("better")


def test_detected_means_above_chance_and_above_the_floor() -> None:
    """The floor itself never counts; baseline is above 0.5 at m1e10 but not above the floor."""
    assert detected_bins(HEADLINE) == {"baseline": [], "dual_stream": ["m1e10"]}

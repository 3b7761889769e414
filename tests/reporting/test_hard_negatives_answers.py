"""The hard-negatives section's answer lines: verdicts from the paired intervals, seed values shown."""

from __future__ import annotations

from lensml.reporting.hard_negatives import answers


def _auc(v: float) -> dict:
    return {"value": v, "ci": [v - 0.01, v + 0.01], "seed_values": [v, v, v]}


def test_answers_name_the_conditions_where_the_interval_excludes_zero() -> None:
    def fp_entry(value: float, ci: list[float]) -> dict:
        return {"variants": {}, "comparisons": [{"a": "flux", "b": "fv", "value": value, "ci": ci}]}

    fp = {
        "clean": fp_entry(0.0, [-0.01, 0.01]),
        "clumps": fp_entry(-0.2, [-0.25, -0.15]),
        "poles": fp_entry(0.05, [0.02, 0.08]),
    }
    auc_diff = {"a": "flux", "b": "fv", "auc": {"value": 0.06, "ci": [0.04, 0.08]}}
    variants = {"flux": {"auc": _auc(0.78)}, "fv": {"auc": _auc(0.84)}}
    conds = {"clumps": {"variants": variants, "comparisons": [auc_diff]}}
    (line,) = answers({"false_positives": {"conditions": fp}, "conditions": conds})
    assert "significantly lower on `clumps` -0.200 [-0.250, -0.150]" in line
    assert "higher on `poles`" in line and "`clean`" not in line
    assert "`clumps` +0.060 [+0.040, +0.080] [0.780 (0.780, 0.780, 0.780) / 0.840" in line

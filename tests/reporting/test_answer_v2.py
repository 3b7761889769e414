"""The v2 answer at the top of the report: verdicts from the paired intervals, the ceiling's ratios."""

from __future__ import annotations

from pathlib import Path

from lensml.reporting.answer_v2 import answer, render
from lensml.reporting.core import Report


def _m(v: float, lo: float, hi: float) -> dict:
    return {"value": v, "ci": [lo, hi], "seed_values": [v]}


def _cond(auc_f: float, auc_fv: float, d: tuple[float, float, float]) -> dict:
    return {"variants": {"flux": {"auc": _m(auc_f, auc_f - 0.02, auc_f + 0.02)},
                         "flux_velocity": {"auc": _m(auc_fv, auc_fv - 0.02, auc_fv + 0.02)}},
            "comparisons": [{"a": "flux", "b": "flux_velocity", "auc": _m(*d)}]}  # fmt: skip


def _summaries() -> dict:
    h = {"conditions": {"m1e9": _cond(0.50, 0.51, (0.01, -0.01, 0.03)),
                        "m1e11": _cond(0.70, 0.75, (0.05, 0.02, 0.08))},
         "sensitivity": {"conditions": ["m1e9", "m1e11"]}}  # fmt: skip
    fc = {"forecast": {"noise": {"nominal": {"summary": {"results": {
        "flux": {"macro_source": {"m_min_msun": 1.0e10}},
        "flux+velocity@10": {"macro_source": {"m_min_msun": 8.0e9}}}}}}}}  # fmt: skip
    rb = {"conditions": {"m1e11": _cond(0.7, 0.75, (0.05, 0.02, 0.08)),
                         "m1e11_psf0.2": _cond(0.6, 0.55, (-0.05, -0.08, -0.02))}}  # fmt: skip
    return {"headline_resnet": h, "forecast": fc, "robustness_resnet": rb}


def test_answer_takes_each_verdict_from_its_interval() -> None:
    a = answer(_summaries())
    assert a["cnn_verdicts"] == {"no significant difference": ["m1e9"], "better (interval > 0)": ["m1e11"]}
    assert a["cnn_best"]["flux_velocity"]["condition"] == "m1e11"
    assert a["robustness"]["worse (interval < 0)"] == ["m1e11_psf0.2"]
    assert a["ceiling"] == {"flux": 1.0e10, "flux+velocity@10": 8.0e9}
    assert answer({"forecast": _summaries()["forecast"]}) is None


def test_render_writes_the_answer_with_the_ceiling_ratio(tmp_path: Path) -> None:
    r = Report(tmp_path, _summaries(), tmp_path)
    render(r)
    text = "".join(r.md)
    assert "## The answer so far (v2)" in text and "10 km/s x1.25" in text
    assert "better (interval > 0): `m1e11`" in text and "`m1e11_psf0.2`" in text

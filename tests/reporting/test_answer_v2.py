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
        "flux": {"macro_source": {"m_min_msun": 1.0e10, "m_min_ci95": [9.0e9, 1.1e10]}},
        "flux+velocity@10": {"macro_source": {"m_min_msun": 8.0e9, "m_min_ci95": [7.0e9, 8.5e9]}},
    }}}}}}  # fmt: skip
    fc["forecast"]["noise"]["low_snr"] = {"summary": {"results": {
        "flux": {"macro_source": {"m_min_msun": 3.0e10}},
        "flux+velocity@10": {"macro_source": {"m_min_msun": 2.0e10}}}}}  # fmt: skip
    rb = {"conditions": {"m1e11": _cond(0.7, 0.75, (0.05, 0.02, 0.08)),
                         "m1e11_psf0.2": _cond(0.6, 0.55, (-0.05, -0.08, -0.02))}}  # fmt: skip
    long = {"conditions": {"m1e9": _cond(0.50, 0.50, (0.0, -0.02, 0.02)),
                           "m1e11": _cond(0.80, 0.79, (-0.01, -0.03, 0.01))},
            "scale": {"n_train": 65536, "epochs": 16, "seeds": [0]}}  # fmt: skip
    ab = {"conditions": {"m1e11": {"variants": {"flux": {"auc": _m(0.7, 0.68, 0.72)},
                                                "mask_only": {"auc": _m(0.52, 0.50, 0.54)}},
                                   "comparisons": [{"a": "flux_velocity", "b": "shuffled_velocity",
                                                    "auc": _m(0.0, -0.02, 0.02)}]}},
          "scale": {"seeds": [0]}}  # fmt: skip
    return {"headline_resnet": h, "forecast": fc, "robustness_resnet": rb, "headline_resnet_long": long,
            "ablations_resnet": ab}


def test_answer_takes_each_verdict_from_its_interval() -> None:
    a = answer(_summaries())
    assert a["cnn_verdicts"] == {"no significant difference": ["m1e9"], "better (interval > 0)": ["m1e11"]}
    assert a["cnn_best"]["flux_velocity"]["condition"] == "m1e11"
    assert a["robustness"]["worse (interval < 0)"] == ["m1e11_psf0.2"]
    assert a["ceiling"]["nominal"] == {"flux": 1.0e10, "flux+velocity@10": 8.0e9}
    assert list(a["ceiling"]) == ["nominal", "low_snr"]
    assert a["long"]["samples"] == 65536 * 16 and a["long"]["verdicts"] == {
        "no significant difference": ["m1e9", "m1e11"]}
    assert a["long"]["best"]["flux"][1] == "m1e11"
    assert a["ablations"]["m1e11"]["shuffled"]["auc"]["ci"] == [-0.02, 0.02]
    assert a["ablations"]["m1e11"]["velocity_only"] is None
    assert answer({"forecast": _summaries()["forecast"]}) is None


def test_render_writes_the_answer_with_the_ceiling_ratio(tmp_path: Path) -> None:
    r = Report(tmp_path, _summaries(), tmp_path)
    render(r)
    text = "".join(r.md)
    assert "## The answer so far (v2)" in text and "10 km/s x1.25" in text
    assert "nominal noise: flux alone 1e10 M_sun, lowered by 10 km/s x1.25;" in text  # intervals disjoint
    assert "low_snr noise: flux alone 3e10 M_sun, lowered by 10 km/s x1.50 (n.s.)" in text  # no intervals
    assert "**Trained longer** (1.05M samples per run, 1 seed)" in text
    assert "shuffled − paired velocity ΔAUC" in text
    assert "(same network and budget, 1 seed per variant;" in text
    assert "mask alone 0.520 [0.500, 0.540]" in text
    assert "better (interval > 0): `m1e11`" in text and "`m1e11_psf0.2`" in text
    assert "One seed:" not in text  # the headline here has no seed spread to judge the one seed against


def test_a_one_seed_difference_is_judged_against_the_headline_seed_spread(tmp_path: Path) -> None:
    s = _summaries()
    for cname, values in (("m1e9", [0.49, 0.50, 0.51]), ("m1e11", [0.69, 0.70, 0.71])):
        s["headline_resnet"]["conditions"][cname]["variants"]["flux"]["auc"]["seed_values"] = values
    s["headline_resnet_long"]["conditions"] = {"m1e9": _cond(0.50, 0.49, (-0.01, -0.015, -0.005)),
                                               "m1e11": _cond(0.80, 0.75, (-0.05, -0.07, -0.03))}
    assert answer(s)["long"]["seed_spread"] == [["m1e11"], ["m1e9"]]
    r = Report(tmp_path, s, tmp_path)
    render(r)
    assert ("One seed: larger than the headline's seed-to-seed AUC range in `m1e11`, within it in `m1e9`"
            in "".join(r.md))


def test_the_old_head_is_named_only_for_the_failed_runs_that_had_it(tmp_path: Path) -> None:
    s = _summaries()
    stuck = [0.51, 0.5, 0.5]
    s["ablations_resnet"]["runs"] = {
        "a": {"variant": "flux_mask", "model": "resnet", "val_auc_per_epoch": stuck},
        "b": {"variant": "velocity_only", "model": "resnet", "head_norm": "batch",
              "val_auc_per_epoch": stuck}}
    r = Report(tmp_path, s, tmp_path)
    render(r)
    text = "".join(r.md)
    assert ("Runs that did not learn: flux_mask, velocity_only; flux_mask trained with the head without "
            "BatchNorm, which can fail this way.") in text

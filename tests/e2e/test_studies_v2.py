"""The v2 studies at ``scale=tiny`` (real simulator, training): the headline with its fit block and the
robustness study on its runs, the ablations, the forecast sharded and resumed; each report section from the
summaries alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from study_runs import run_stage, run_tiny

from lensml.errors import ConfigError
from lensml.study import train_jobs, training_overrides
from lensml.study_config import load_study


def test_forecast_study_tiny_sharded_resumed_and_its_report_section(tmp_path: Path) -> None:
    """``study=forecast scale=tiny`` runs from the real study file (its per_scale settings); ``stage=evaluate
    shard=k n_shards=n`` computes noise groups k, k + n, ... only and keeps each with its config hash,
    ``stage=summarise`` reuses them; the report renders its section from the summary alone."""
    from lensml.report import build_report

    noise = "study.forecast.per_scale.tiny.noise"
    assert run_stage("forecast", tmp_path, "evaluate", f"{noise}=[nominal,low_snr]", "n_shards=2") is None
    work = tmp_path / "forecast" / "forecast"
    assert sorted(p.name for p in work.iterdir()) == ["nominal.json"]  # shard 0 of 2: low_snr is shard 1's
    before = (work / "nominal.json").stat().st_mtime_ns
    with pytest.raises(ConfigError, match=r"\['low_snr'\] not computed .* run stage=evaluate"):
        run_stage("forecast", tmp_path, "summarise", f"{noise}=[nominal,low_snr]")  # shard 1 has not run
    s = run_tiny("forecast", tmp_path, "stage=summarise")
    assert (work / "nominal.json").stat().st_mtime_ns == before  # reused, not recomputed
    res = s["forecast"]["noise"]["nominal"]
    assert res == json.loads((work / "nominal.json").read_text())["result"]
    assert list(s["forecast"]["noise"]) == ["nominal"] and res["n_draws"] == 2
    assert set(res["summary"]["results"]) == {"flux", "flux+velocity@10", "cube@4"}
    assert "m_min_ratio" in res["summary"]["results"]["cube@4"]["macro"]  # paired M_min(flux) / M_min(cube)
    kept = json.loads((work / "nominal.json").read_text())
    kept["result"]["summary"] = {"stale": True}  # a summary of older summary code: made again from per_draw
    (work / "nominal.json").write_text(json.dumps(kept))
    again = run_tiny("forecast", tmp_path, "stage=summarise")["forecast"]["noise"]["nominal"]
    assert again["summary"] == res["summary"]
    readme = build_report(tmp_path / "summaries", tmp_path / "rep", "forecast").read_text()
    assert "The information ceiling" in readme and "M_min per data set" in readme
    assert (tmp_path / "rep" / "figures" / "forecast_nominal.png").exists()


def test_headline_resnet_streams_on_the_fly_and_reports_m50_and_learning_curves(
    tmp_path: Path, real_maps_path: Path
) -> None:
    """The v2 headline trains streaming runs without a training cache, summarises recall at 1/5/10 % FPR with
    seed-folded intervals, M50 and the learning curve (samples seen, the final re-validation dropped), and the
    report renders its section from the summary alone."""
    from lensml.report import build_report

    study = load_study("headline_resnet", "tiny")
    job = train_jobs(study, tmp_path)[0]
    ov = training_overrides(job, tmp_path)
    assert "data=onthefly" in ov and not any(o.startswith("data.cache_dir") for o in ov)
    s = run_tiny("headline_resnet", tmp_path)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    c = s["conditions"]["m1e10"]
    assert {"recall_at_fpr1", "recall_at_fpr10"} <= set(c["variants"]["flux"]) and s["seeds_folded"]
    assert set(s["sensitivity"]["variants"]["flux"]["m50"]) >= {"value", "ci", "frac_above_range"}
    assert s["sensitivity"]["m50_comparisons"][0]["a"] == "flux"
    run = s["runs"]["flux_s0"]
    assert run["samples_seen_per_epoch"] == [48] and len(run["val_auc_per_epoch"]) == 1
    fd = s["fit_detect"]["conditions"]["clean_m1e10"]  # fits of the CNNs' first 5 test samples, paired
    assert fd["n"] == 5 and 0 < fd["n_pos"] < 5
    assert set(fd["detectors"]) == {f"{kind}:{d}" for kind in ("fit", "cnn", "hybrid", "oracle")
                                    for d in ("flux", "flux_velocity")}
    assert {(c["a"], c["b"]) for c in fd["comparisons"]} >= {("fit:flux", "fit:flux_velocity"),
                                                             ("fit:flux", "hybrid:flux")}
    assert len(list((tmp_path / "headline_resnet" / "fit_detect").rglob("0*.json"))) == 10
    readme = build_report(tmp_path / "summaries", tmp_path / "rep", "v2").read_text()
    assert "Headline (v2)" in readme and "**M50**" in readme
    assert "**Fit, then detect**" in readme and "**Three answers side by side**" in readme
    assert (tmp_path / "rep" / "figures" / "headline_v2_learning_curves.png").exists()
    # the v2 robustness study re-uses these runs (no training): every shift condition, paired flux vs flux+vel
    rb = run_tiny("robustness_resnet", tmp_path)
    assert set(rb["runs"]) == {"flux_s0", "flux_velocity_s0"} and len(rb["conditions"]) == 9
    assert rb["conditions"]["m1e11_manga"]["comparisons"][0]["b"] == "flux_velocity"
    readme = build_report(tmp_path / "summaries", tmp_path / "rep", "v2").read_text()
    assert "Robustness (v2)" in readme and (tmp_path / "rep" / "figures" / "robustness_resnet.png").exists()
    # the v2 near-real case on these runs (the study reads headline_resnet_long's; here the headline's)
    nr = run_tiny("near_real_resnet", tmp_path, "study.runs_from.study=headline_resnet")
    g = nr["near_real"]["galaxies"]["7815-3702"]
    assert set(g["variants"]) == {"flux", "flux_velocity"} and g["arrays"] == "near_real_resnet_7815-3702.npz"
    assert (tmp_path / "summaries" / g["arrays"]).exists()
    readme = build_report(tmp_path / "summaries", tmp_path / "rep", "v2").read_text()
    assert "Near-real (v2)" in readme
    assert (tmp_path / "rep" / "figures" / "near_real_resnet_7815-3702.png").exists()


def test_ablations_resnet_trains_every_input_variant_and_reports_what_each_tells(tmp_path: Path) -> None:
    """The v2 ablations train one network per input variant (the mask alone included) on the same budget,
    compare them on identical test sets, and the report reads each comparison from its interval."""
    from lensml.report import build_report
    from lensml.reporting.ablations_v2 import VARIANTS

    s = run_tiny("ablations_resnet", tmp_path)
    assert set(s["runs"]) == {f"{v}_s0" for v in VARIANTS}
    c = s["conditions"]["m1e11"]
    assert set(c["variants"]) == set(VARIANTS)
    assert {(x["a"], x["b"]) for x in c["comparisons"]} >= {("flux_velocity", "shuffled_velocity"),
                                                             ("flux", "mask_only")}
    readme = build_report(tmp_path / "summaries", tmp_path / "rep", "v2").read_text()
    assert "Ablations (v2)" in readme and "**Reading.**" in readme and "the mask alone" in readme

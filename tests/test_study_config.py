"""Studies as config: ``experiments/study/`` and ``experiments/scale/`` composed by conf/study.yaml."""

from __future__ import annotations

import pytest

from lensml.errors import ConfigError
from lensml.study_config import STUDY_DIR, compose_study, load_study, scale_names, study_names


def test_every_study_composes_at_every_scale() -> None:
    assert set(study_names()) >= {
        "headline", "domain_shift", "instrument_shift", "velocity_degradation", "ablations", "near_real",
        "signal", "mask_leak", "forecast", "control", "hard_negatives",
    }
    assert set(scale_names()) >= {"tiny", "cpu", "full", "gpu"}
    for name in study_names():
        assert (STUDY_DIR / f"{name}.yaml").read_text().startswith("# @package study\n"), name
        for scale in scale_names():
            study = load_study(name, scale)
            assert study["name"] == name and study["scale"]["name"] == scale
            assert all(isinstance(s, int) for s in study["scale"]["seeds"])


def test_a_studys_own_scale_values_win_over_the_preset_and_the_command_line_over_both() -> None:
    tiny, full = load_study("control", "tiny")["scale"], load_study("control", "full")["scale"]
    assert (tiny["n_train"], tiny["epochs"], tiny["seeds"]) == (48, 1, [0])  # the preset
    assert (full["n_train"], full["epochs"], full["seeds"]) == (4096, 4, [0, 1])  # control.yaml's scales.full
    assert load_study("headline", "full")["scale"]["n_train"] == 8192  # the preset
    assert load_study("control", "full", ["scale.epochs=2"])["scale"]["epochs"] == 2
    assert load_study("control", "full", ["study.scales.full.epochs=3"])["scale"]["epochs"] == 3
    assert load_study("headline", "cpu", ["+study.scales.cpu.epochs=3"])["scale"]["epochs"] == 3
    common = load_study("headline", "tiny", ["study.common=['logger=csv','data.seed=1']"])["common"]
    assert common == ["logger=csv", "data.seed=1"]


def test_a_study_composed_from_another_differs_only_where_it_says() -> None:
    """``headline_resnet_long`` takes ``headline_resnet`` through its defaults list: same runs and test sets,
    its own name, sizes, single-seed intervals, no fit block and the image variants only (not the
    oracle-residual bound)."""
    base, long = load_study("headline_resnet", "cpu"), load_study("headline_resnet_long", "cpu")
    for key in ("common", "evaluate", "compare", "metrics", "sensitivity", "null_condition"):
        assert long[key] == base[key], key
    assert long["train"] == [v for v in base["train"] if not v["name"].endswith("_oracle")]
    assert long["name"] == "headline_resnet_long" and long["fit_detect"] is None and not long["fold_seeds"]
    assert (long["scale"]["n_train"] * long["scale"]["epochs"], long["scale"]["seeds"]) == (65536 * 16, [0])
    assert long["scale"]["n_test"] == base["scale"]["n_test"]  # the headline's test-set size, so comparable


def test_the_study_config_carries_the_scale_into_out_root() -> None:
    cfg = compose_study(["study=signal", "scale=tiny"])
    assert cfg.out_root == "outputs/studies/tiny" and cfg.study.name == "signal"


def test_an_unknown_study_or_scale_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="study='nope'.*headline"):
        load_study("nope")
    with pytest.raises(ConfigError, match="scale='huge'.*tiny"):
        load_study("headline", "huge")

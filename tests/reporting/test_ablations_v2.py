"""The v2 ablations' readings follow the intervals: each paired comparison, one seed against the headline's
seed spread, an input alone against chance."""

from __future__ import annotations

from lensml.reporting.ablations_v2 import (
    READINGS,
    alone_reading,
    failure_cause,
    not_learning,
    paired_reading,
    seed_spread,
)

PAIRING = READINGS[1]  # flux_velocity -> shuffled_velocity
MASK = READINGS[2]  # flux -> mask_only


def _cond(a: str, b: str, value: float, ci: tuple[float, float]) -> dict:
    return {"comparisons": [{"a": a, "b": b, "auc": {"value": value, "ci": ci}}], "variants": {}}


def test_a_paired_reading_follows_its_interval() -> None:
    assert "no significant difference" in paired_reading(
        _cond("flux_velocity", "shuffled_velocity", 0.005, (-0.01, 0.02)), PAIRING, False, None)
    assert "uses what its own velocity map tells" in paired_reading(
        _cond("flux_velocity", "shuffled_velocity", -0.03, (-0.05, -0.01)), PAIRING, False, None)
    assert "its own costs it" in paired_reading(
        _cond("flux_velocity", "shuffled_velocity", 0.03, (0.01, 0.05)), PAIRING, False, None)
    mask = _cond("flux", "mask_only", 0.03, (0.01, 0.05))
    assert "learning limit" in paired_reading(mask, MASK, False, None)
    assert paired_reading({"comparisons": [], "variants": {}}, MASK, False, None) is None


def test_with_one_seed_an_effect_inside_the_headline_seed_spread_is_not_attributed() -> None:
    c = _cond("flux", "mask_only", 0.02, (0.01, 0.03))
    assert "not attributable" in paired_reading(c, MASK, True, (0.024, "flux_velocity"))
    assert "learning limit" in paired_reading(c, MASK, True, (0.01, "flux"))  # larger than the spread
    assert "learning limit" in paired_reading(c, MASK, False, (0.024, "flux"))  # several seeds: folded
    head = {"conditions": {"m1e11": {"variants": {
        "flux": {"auc": {"seed_values": [0.65, 0.66]}},
        "flux_velocity": {"auc": {"seed_values": [0.62, 0.66, 0.64]}},
        "flux_oracle": {"auc": {"seed_values": [0.80, 0.99]}}},  # not compared: not the yardstick
        "comparisons": [{"a": "flux", "b": "flux_velocity"}]}}}  # fmt: skip
    spread = seed_spread(head, "m1e11")
    assert spread[1] == "flux_velocity" and abs(spread[0] - 0.04) < 1e-12
    assert seed_spread(head, "m3e11") is None and seed_spread(None, "m1e11") is None


def test_an_input_alone_is_above_below_or_not_distinguishable_from_chance() -> None:
    def cond(ci: tuple[float, float]) -> dict:
        return {"variants": {"mask_only": {"auc": {"value": sum(ci) / 2, "ci": ci}}}}

    assert "above chance" in alone_reading(cond((0.52, 0.6)), "mask_only", "the mask")
    assert "below chance" in alone_reading(cond((0.4, 0.48)), "mask_only", "the mask")
    assert "not distinguishable" in alone_reading(cond((0.48, 0.56)), "mask_only", "the mask")
    assert alone_reading(cond((0.5, 0.6)), "velocity_only", "the velocity map") is None


def test_a_run_that_did_not_learn_is_named_and_its_comparisons_are_no_evidence() -> None:
    runs = {"flux_mask_s0": {"variant": "flux_mask", "val_auc_per_epoch": [0.52, 0.517, 0.5, 0.5]},
            "slow_s0": {"variant": "slow", "val_auc_per_epoch": [0.52, 0.4995, 0.5085, 0.498]},
            "flux_s0": {"variant": "flux", "val_auc_per_epoch": [0.51, 0.5, 0.53]},
            "once_s0": {"variant": "once", "val_auc_per_epoch": [0.52, 0.5]}}
    dead = not_learning(runs)
    assert dead == {"flux_mask": 2, "slow": 1}  # the last two epochs or more near 0.5; one is not enough
    c = _cond("flux", "flux_mask", -0.08, (-0.1, -0.05))
    assert "did not learn" in paired_reading(c, READINGS[4], False, None, dead)
    alone = {"variants": {"flux_mask": {"auc": {"value": 0.5, "ci": (0.49, 0.51)}}}}
    assert "its run did not learn" in alone_reading(alone, "flux_mask", "the thing", dead)


def test_a_failed_run_with_the_old_head_is_named_as_such() -> None:
    """The known cause is named only for residual-net runs trained with the head without BatchNorm (recorded
    as "none", or summaries from before the record), never for runs with the head's BatchNorm."""
    stuck = [0.51, 0.5, 0.5, 0.5]
    runs = {"a": {"variant": "flux_velocity", "model": "resnet", "val_auc_per_epoch": stuck},
            "b": {"variant": "flux_mask", "model": "resnet", "head_norm": "none", "val_auc_per_epoch": stuck},
            "c": {"variant": "velocity_only", "model": "resnet", "head_norm": "batch",
                  "val_auc_per_epoch": stuck},
            "d": {"variant": "baseline", "model": "baseline", "val_auc_per_epoch": stuck}}
    dead = not_learning(runs)
    assert set(dead) == {"flux_velocity", "flux_mask", "velocity_only", "baseline"}
    text = failure_cause(runs, dead)
    assert text.startswith("The flux_mask, flux_velocity run(s) had the head without BatchNorm")
    assert "velocity_only" not in text and "baseline" not in text
    assert failure_cause({"c": runs["c"]}, dead) == ""

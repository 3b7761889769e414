"""The v2 ablations' readings follow the intervals: shuffled vs paired velocity, an input alone vs chance."""

from __future__ import annotations

from lensml.reporting.ablations_v2 import _alone_reading, _mask_vs_flux, _pairing_reading


def _cond(delta_ci: tuple[float, float], mask_ci: tuple[float, float]) -> dict:
    comp = {"a": "flux_velocity", "b": "shuffled_velocity", "auc": {"value": 0.0, "ci": delta_ci}}
    return {"comparisons": [comp], "variants": {"mask_only": {"auc": {"value": 0.5, "ci": mask_ci}}}}


def test_pairing_reading_follows_the_interval() -> None:
    assert "adds nothing" in _pairing_reading(_cond((-0.01, 0.02), (0.4, 0.6)))
    assert "it uses what its own velocity map tells" in _pairing_reading(_cond((-0.05, -0.01), (0.4, 0.6)))
    assert "costs it" in _pairing_reading(_cond((0.01, 0.05), (0.4, 0.6)))
    assert _pairing_reading({"comparisons": [], "variants": {}}) is None


def test_an_input_alone_is_above_chance_only_when_its_interval_is() -> None:
    assert "at chance" in _alone_reading(_cond((0, 0), (0.48, 0.56)), "mask_only", "the mask")
    assert "above chance" in _alone_reading(_cond((0, 0), (0.52, 0.6)), "mask_only", "the mask")
    assert _alone_reading(_cond((0, 0), (0.5, 0.6)), "velocity_only", "the velocity map") is None


def test_the_mask_against_the_flux_reads_a_learning_limit_not_a_leak() -> None:
    def cond(ci: tuple[float, float]) -> dict:
        return {"comparisons": [{"a": "flux", "b": "mask_only", "auc": {"value": sum(ci) / 2, "ci": ci}}]}

    assert "learning limit" in _mask_vs_flux(cond((0.01, 0.03)))
    assert "more than its outline" in _mask_vs_flux(cond((-0.03, -0.01)))
    assert "as much as" in _mask_vs_flux(cond((-0.01, 0.02)))
    assert _mask_vs_flux({"comparisons": []}) is None

"""M50 and its bootstrap on detection curves with a known crossing."""

import numpy as np
import pytest

from lensml.analysis.sensitivity import _add_m50, m50_bootstrap


def _detections(logm: np.ndarray, m50_log10: float, n_seeds: int, rng: np.random.Generator) -> np.ndarray:
    """(S, n) detections with P(detect) = logistic((log10 M - m50) / 0.15): 50 % at ``m50_log10``."""
    p = 1.0 / (1.0 + np.exp(-(logm - m50_log10) / 0.15))
    return rng.random((n_seeds, logm.size)) < p


def test_m50_bootstrap_recovers_a_known_crossing_and_a_paired_shift() -> None:
    rng = np.random.default_rng(0)
    logm = rng.uniform(8.0, 12.0, 20000)
    edges = np.arange(8.0, 12.01, 0.25)
    a = _detections(logm, 10.5, 3, rng)
    b = _detections(logm, 10.0, 3, rng)
    full = m50_bootstrap(logm, a, edges, np.arange(logm.size)[None, :], None)[0]
    assert full == pytest.approx(10.5, abs=0.05)
    out = {"variants": {"a": {}, "b": {}}}
    _add_m50(out, logm, edges, {"a": a, "b": b}, [["a", "b"]], rng, fold_seeds=True, n_boot=200)
    ma = out["variants"]["a"]["m50"]
    assert ma["ci"][0] < 10**10.5 < ma["ci"][1] and ma["frac_above_range"] == 0.0
    comp = out["m50_comparisons"][0]
    assert comp["dlog10"] == pytest.approx(-0.5, abs=0.07)
    assert comp["ci"][1] < 0 and comp["p_le_0"] == 1.0


def test_m50_above_the_range_is_reported_as_such() -> None:
    rng = np.random.default_rng(1)
    logm = rng.uniform(8.0, 10.0, 2000)
    edges = np.arange(8.0, 10.01, 0.5)
    never = rng.random((2, logm.size)) < 0.05
    out = {"variants": {"a": {}}}
    _add_m50(out, logm, edges, {"a": never}, [], rng, fold_seeds=False, n_boot=100)
    m = out["variants"]["a"]["m50"]
    assert m["value"] is None and m["ci"] == [None, None] and m["frac_above_range"] == 1.0

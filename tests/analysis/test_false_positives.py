"""False-positive rate at a threshold fixed on clean negatives (the hard-negatives study's statistic)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from lensml.analysis.false_positives import false_positive_table, fpr_at_threshold


def test_fpr_on_shifted_negatives_matches_the_gaussian_answer() -> None:
    rng = np.random.default_rng(0)
    n = 20000
    y = np.zeros(n, int)
    y[: n // 10] = 1
    clean = rng.normal(0, 1, n)
    shifted = rng.normal(0, 1, n) + np.where(y == 0, 1.0, 0.0)  # hard negatives look more like positives
    scores = {
        "flux": {"clean": clean[None], "hard": shifted[None]},
        "fv": {"clean": clean[None], "hard": clean[None]},
    }
    out = false_positive_table(scores, {"clean": y, "hard": y}, "clean", [["flux", "fv"]], n_boot=200)
    c = out["conditions"]
    assert c["clean"]["variants"]["flux"]["value"] == pytest.approx(0.05, abs=0.005)
    expect = 1 - norm.cdf(norm.ppf(0.95) - 1.0)  # ~0.26
    assert c["hard"]["variants"]["flux"]["value"] == pytest.approx(expect, abs=0.015)
    lo, hi = c["hard"]["variants"]["flux"]["ci"]
    assert lo < expect < hi
    # fv is unaffected by the hard negatives: its FPR stays at 5 %, and the paired difference is negative
    d = c["hard"]["comparisons"][0]
    assert d["a"] == "flux" and d["b"] == "fv" and d["ci"][1] < 0


def test_fpr_at_threshold_counts_strictly_above() -> None:
    assert fpr_at_threshold(np.array([0.1, 0.5, 0.5, 0.9]), 0.5) == 0.25

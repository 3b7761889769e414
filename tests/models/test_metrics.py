import math

import numpy as np
import pytest

from lensml.models.metrics import bin_name, flat_scalars, split_metrics


def auc_by_ranks(p: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney AUC (no ties): P(score of a positive > score of a negative)."""
    pos, neg = p[y == 1], p[y == 0]
    return float((pos[:, None] > neg[None, :]).mean())


def test_overall_and_per_bin_auc_match_rank_formula():
    rng = np.random.default_rng(1)
    n = 400
    y = (rng.random(n) < 0.5).astype(int)
    mass = np.where(y == 1, 10 ** rng.uniform(6.6, 9.4, n), 0.0)
    # heavier subhaloes are easier: score rises with log mass
    p = np.where(y == 1, 0.1 * (np.log10(np.maximum(mass, 1)) - 6.5), 0.0) + rng.normal(0, 0.2, n)
    p = 1 / (1 + np.exp(-p))
    m = split_metrics(p, y, mass)
    assert m["auc"] == pytest.approx(auc_by_ranks(p, y), abs=1e-5)
    assert set(m["per_mass_bin"]) == {"1e7", "1e8", "1e9", "1e10"}
    for lo, name in [(6.5, "1e7"), (7.5, "1e8"), (8.5, "1e9")]:
        in_bin = (y == 1) & (mass >= 10**lo) & (mass < 10 ** (lo + 1))
        sel = in_bin | (y == 0)
        e = m["per_mass_bin"][name]
        assert e["n_pos"] == int(in_bin.sum()) > 0
        assert e["auc"] == pytest.approx(auc_by_ranks(p[sel], y[sel]), abs=1e-5)
    assert m["per_mass_bin"]["1e7"]["auc"] < m["per_mass_bin"]["1e9"]["auc"]
    empty = m["per_mass_bin"]["1e10"]
    assert empty["n_pos"] == 0 and empty["auc"] is None
    flat = flat_scalars(m, "test")
    assert "test/auc_1e8" in flat and "test/auc_1e10" not in flat


def test_recall_at_fixed_fpr():
    # 100 negatives with scores 0.00..0.99; positives: 10 above every negative, 10 between the 94th and
    # 95th negative, 10 below all negatives.
    neg = np.arange(100) / 100
    pos = np.concatenate([np.full(10, 2.0), np.full(10, 0.945), np.full(10, -1.0)])
    p = np.concatenate([neg, pos])
    y = np.concatenate([np.zeros(100, int), np.ones(30, int)])
    m = split_metrics(p, y, np.where(y == 1, 1e8, 0.0))
    # FPR <= 1 %: threshold above 0.98 -> only the 10 top positives; FPR <= 5 %: threshold ~0.945 -> 20
    assert m["recall_at_fpr1"] == pytest.approx(10 / 30)
    assert m["recall_at_fpr5"] == pytest.approx(20 / 30)
    assert m["roc"]["fpr"][0] == 0.0 and m["roc"]["tpr"][-1] == 1.0


def test_single_class_gives_none_not_crash():
    m = split_metrics(np.array([0.2, 0.7]), np.array([0, 0]), np.zeros(2))
    assert m["auc"] is None and m["accuracy"] == pytest.approx(0.5)


def test_bin_name():
    assert bin_name(7.5, 8.5) == "1e8"
    assert bin_name(7.0, 7.5) == "1e7.25"
    assert not math.isnan(float(bin_name(6.5, 7.5)))

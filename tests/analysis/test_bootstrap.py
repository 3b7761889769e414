"""Bootstrap statistics against known cases."""

import numpy as np
import pytest
from scipy.stats import norm

from lensml.analysis.bootstrap import (
    auc_rows,
    bootstrap_metric,
    paired_difference,
    recall_at_fpr,
    stratified_indices,
    threshold_at_fpr,
)
from lensml.models.metrics import split_metrics


def _binormal(n: int, d: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = (np.arange(n) % 2).astype(int)
    return rng.normal(0.0, 1.0, n) + d * y, y


def test_auc_matches_torchmetrics_and_handles_ties() -> None:
    rng = np.random.default_rng(1)
    s, y = _binormal(500, 1.0, rng)
    s = np.round(s, 1)  # ties
    assert auc_rows(s, y)[0] == pytest.approx(split_metrics(s, y, np.zeros(500))["auc"], abs=1e-6)
    assert auc_rows(np.ones(10), np.arange(10) % 2)[0] == pytest.approx(0.5)
    assert np.isnan(auc_rows(np.arange(4.0), np.zeros(4))[0])


def test_recall_at_fpr_definition() -> None:
    neg = np.arange(100) / 100.0  # 0.00 .. 0.99
    t = threshold_at_fpr(neg, 0.05)
    assert np.mean(neg > t) <= 0.05 and np.mean(neg >= t) > 0.05
    s = np.concatenate([neg, [0.5, 0.95, 0.999]])
    y = np.r_[np.zeros(100), np.ones(3)].astype(int)
    assert recall_at_fpr(s, y, 0.05) == pytest.approx(2 / 3)  # 0.95 and 0.999 lie above t = 0.94


def test_auc_interval_covers_truth_on_binormal_scores() -> None:
    d = 1.0
    truth = norm.cdf(d / np.sqrt(2.0))
    covered = 0
    for k in range(20):
        rng = np.random.default_rng(100 + k)
        s, y = _binormal(400, d, rng)
        lo, hi = bootstrap_metric(s, y, "auc", n_boot=300, rng=rng)["ci"]
        covered += lo <= truth <= hi
    assert covered >= 16  # nominal 95 %: 19/20 expected, >= 16 with overwhelming probability


def test_paired_difference_of_identical_predictions_is_exactly_zero() -> None:
    rng = np.random.default_rng(3)
    s, y = _binormal(300, 0.5, rng)
    res = paired_difference([s, s * 0.5], [s, s * 0.5], y, "auc", n_boot=200, rng=rng)
    assert res["diff"]["value"] == 0.0 and res["diff"]["ci"] == [0.0, 0.0]
    res = paired_difference(s, s, y, "recall_at_fpr5", n_boot=200, rng=rng)
    assert res["diff"]["ci"] == [0.0, 0.0]


def test_paired_difference_detects_a_better_model() -> None:
    rng = np.random.default_rng(4)
    y = (np.arange(1000) % 2).astype(int)
    base = rng.normal(0, 1, 1000)
    weak, strong = base + 0.3 * y, base + 0.3 * y + rng.normal(0, 0.3, 1000) + 0.8 * y
    res = paired_difference(weak, strong, y, "auc", n_boot=300, rng=rng)
    assert res["diff"]["ci"][0] > 0 and res["diff"]["p_le_0"] == 0.0
    assert res["b"]["value"] > res["a"]["value"]


def test_seed_average_and_spread() -> None:
    rng = np.random.default_rng(5)
    s1, y = _binormal(200, 1.0, rng)
    s2 = rng.normal(0, 1, 200)  # an uninformative seed
    res = bootstrap_metric([s1, s2], y, "auc", n_boot=100, rng=rng)
    assert res["value"] == pytest.approx(np.mean([auc_rows(s1, y)[0], auc_rows(s2, y)[0]]))
    assert res["seed_std"] > 0.05 and len(res["seed_values"]) == 2


def test_stratified_indices_keep_class_counts() -> None:
    y = np.r_[np.ones(7), np.zeros(13)].astype(int)
    idx = stratified_indices(y, 50, np.random.default_rng(0))
    assert idx.shape == (50, 20) and (y[idx].sum(axis=1) == 7).all()


def test_folding_the_seeds_widens_the_interval_only_when_seeds_disagree() -> None:
    rng = np.random.default_rng(11)
    s1, y = _binormal(400, 1.0, rng)
    same = [s1, s1, s1]
    plain = bootstrap_metric(same, y, "auc", n_boot=300, rng=np.random.default_rng(0))
    folded = bootstrap_metric(same, y, "auc", n_boot=300, rng=np.random.default_rng(0), fold_seeds=True)
    assert folded["ci"] == pytest.approx(plain["ci"])  # identical seeds: nothing to fold in
    differ = [s1, rng.normal(0, 1, 400), s1 + rng.normal(0, 2, 400)]
    plain = bootstrap_metric(differ, y, "auc", n_boot=300, rng=np.random.default_rng(0))
    folded = bootstrap_metric(differ, y, "auc", n_boot=300, rng=np.random.default_rng(0), fold_seeds=True)
    width = lambda r: r["ci"][1] - r["ci"][0]  # noqa: E731
    assert folded["seeds_folded"] and width(folded) > 2 * width(plain)
    assert folded["value"] == pytest.approx(plain["value"])
    d = paired_difference(differ, same, y, "auc", n_boot=300, rng=np.random.default_rng(0), fold_seeds=True)
    d0 = paired_difference(differ, same, y, "auc", n_boot=300, rng=np.random.default_rng(0))
    assert d["diff"]["ci"][1] - d["diff"]["ci"][0] > d0["diff"]["ci"][1] - d0["diff"]["ci"][0]


def test_recall_statistics_at_1_and_10_percent() -> None:
    from lensml.analysis.bootstrap import STATISTICS

    rng = np.random.default_rng(3)
    s, y = _binormal(4000, 2.0, rng)
    r1, r10 = STATISTICS["recall_at_fpr1"](s, y)[0], STATISTICS["recall_at_fpr10"](s, y)[0]
    # binormal d = 2: recall = 1 - Phi(z_(1-f) - 2)
    assert r1 == pytest.approx(1 - norm.cdf(norm.ppf(0.99) - 2.0), abs=0.04)
    assert r10 == pytest.approx(1 - norm.cdf(norm.ppf(0.90) - 2.0), abs=0.04)

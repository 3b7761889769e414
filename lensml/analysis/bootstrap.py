"""Detection statistics with bootstrap confidence intervals (numpy, vectorised over resamples).

Conventions (stated once, here):

- ``scores`` = P(subhalo present) per test sample, ``labels`` in {0, 1}.
- ROC AUC = Mann-Whitney U / (n_pos n_neg), ties counted 1/2 (average ranks).
- Recall at FPR ``f``: the threshold is the smallest score ``t`` with ``mean(neg > t) <= f`` (the
  ``floor(f n_neg) + 1``-th highest negative score); recall = ``mean(pos > t)``. This is the largest recall
  whose false-positive rate does not exceed ``f`` (``BinarySensitivityAtSpecificity`` up to ties).
- Bootstrap: stratified resampling of test samples (positives and negatives resampled separately, with
  replacement, so every resample keeps both classes), ``n_boot`` resamples, percentile 95 % intervals.
- Several seeds on ONE test set (same data seed): the statistic of a resample is the **mean over seeds** of
  the per-seed statistic on the same resampled indices; the interval therefore reflects test-set sampling, and
  the seed-to-seed spread is reported separately (``seed_values``, ``seed_std``). With ``fold_seeds=True``
  (hierarchical bootstrap) every resample also draws the S seeds with replacement, so the interval folds in
  the network-seed spread as well (with 3 seeds a coarse but honest widening).
- Paired difference (b - a): both models are scored on the same resampled indices in every resample, so the
  difference of identical predictions is exactly 0 in every resample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

#: statistic name -> function (scores (R, n), labels (R, n)) -> (R,)
Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


def auc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``scores`` (R, n) against ``labels`` (R, n); NaN if a row lacks a class."""
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    y = np.atleast_2d(np.asarray(labels)).astype(bool)
    ranks = rankdata(s, axis=1)
    n_pos = y.sum(axis=1)
    n_neg = y.shape[1] - n_pos
    u = np.where(y, ranks, 0.0).sum(axis=1) - n_pos * (n_pos + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def recall_at_fpr_rows(scores: np.ndarray, labels: np.ndarray, fpr: float = 0.05) -> np.ndarray:
    """Recall at false-positive rate <= ``fpr`` of each row (module docstring); NaN if a class lacks."""
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    y = np.atleast_2d(np.asarray(labels)).astype(bool)
    out = np.full(s.shape[0], np.nan)
    for r in range(s.shape[0]):
        out[r] = recall_at_fpr(s[r], y[r], fpr)
    return out


def threshold_at_fpr(neg_scores: np.ndarray, fpr: float = 0.05) -> float:
    """Smallest threshold t with ``mean(neg_scores > t) <= fpr`` (detections are ``score > t``)."""
    neg = np.sort(np.asarray(neg_scores, dtype=np.float64))[::-1]
    if neg.size == 0:
        return float("nan")
    k = int(np.floor(fpr * neg.size + 1e-9))  # number of negatives allowed above t
    return float(neg[min(k, neg.size - 1)])


def recall_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float = 0.05) -> float:
    """Recall at false-positive rate <= ``fpr`` for one score vector."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    t = threshold_at_fpr(s[~y], fpr)
    return float(np.mean(s[y] > t))


STATISTICS: dict[str, Statistic] = {
    "auc": auc_rows,
    "recall_at_fpr1": lambda s, y: recall_at_fpr_rows(s, y, 0.01),
    "recall_at_fpr5": lambda s, y: recall_at_fpr_rows(s, y, 0.05),
    "recall_at_fpr10": lambda s, y: recall_at_fpr_rows(s, y, 0.10),
}


def seed_draws(n_seeds: int, n_boot: int, rng: np.random.Generator | None, fold: bool) -> np.ndarray | None:
    """(n_boot, n_seeds) seed indices drawn with replacement (``fold`` and more than one seed), else None."""
    if not fold or n_seeds < 2:
        return None
    return (rng if rng is not None else np.random.default_rng(1)).integers(0, n_seeds, size=(n_boot, n_seeds))


def _seed_mean(per_seed: np.ndarray, draws: np.ndarray | None) -> np.ndarray:
    """(R,) mean over seeds of ``per_seed`` (S, R): all seeds, or resample r's drawn seeds ``draws[r]``."""
    if draws is None:
        return per_seed.mean(axis=0)
    return per_seed[draws, np.arange(per_seed.shape[1])[:, None]].mean(axis=1)


def stratified_indices(labels: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) resampled indices: positives and negatives resampled separately with replacement."""
    y = np.asarray(labels).astype(bool)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    cols = []
    for group in (pos, neg):
        if group.size:
            cols.append(group[rng.integers(0, group.size, size=(n_boot, group.size))])
    return np.concatenate(cols, axis=1)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)


def _seed_stats(
    stat: Statistic, scores: np.ndarray, labels: np.ndarray, idx: np.ndarray | None
) -> np.ndarray:
    """(S, R) statistic per seed (rows of ``scores`` (S, n)) on resampled indices (R, n) (or the full set)."""
    if idx is None:
        return np.stack([stat(s[None, :], labels[None, :]) for s in scores])
    y = labels[idx]
    return np.stack([stat(s[idx], y) for s in scores])


def _as_seeds(scores: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    return arr[None, :] if arr.ndim == 1 else arr


def bootstrap_metric(
    scores: np.ndarray | Sequence[np.ndarray],
    labels: np.ndarray,
    metric: str = "auc",
    n_boot: int = 1000,
    rng: np.random.Generator | None = None,
    level: float = 0.95,
    indices: np.ndarray | None = None,
    fold_seeds: bool = False,
    seeds: np.ndarray | None = None,
) -> dict[str, Any]:
    """Seed-averaged ``metric`` with its percentile interval.

    ``scores``: (n,) or (S, n) (one row per seed, all on the same test samples ``labels``); ``fold_seeds``:
    resample the seeds too (``seeds``: given draws, as ``seed_draws``). Returns ``value`` (mean over seeds on
    the full test set), ``ci`` [lo, hi], ``seed_values``, ``seed_std``, ``seeds_folded``.
    """
    stat = STATISTICS[metric]
    s = _as_seeds(scores)
    y = np.asarray(labels).astype(int)
    if indices is None:
        indices = stratified_indices(y, n_boot, rng if rng is not None else np.random.default_rng(0))
    full = _seed_stats(stat, s, y, None)[:, 0]
    if seeds is None:
        seeds = seed_draws(s.shape[0], indices.shape[0], rng, fold_seeds)
    boot = _seed_mean(_seed_stats(stat, s, y, indices), seeds)
    lo, hi = _interval(boot, level)
    return {
        "value": float(np.mean(full)),
        "ci": [lo, hi],
        "seed_values": [float(v) for v in full],
        "seed_std": float(np.std(full, ddof=1)) if len(full) > 1 else 0.0,
        "n": int(y.size),
        "n_pos": int(y.sum()),
        "n_boot": int(indices.shape[0]),
        **({"seeds_folded": True} if seeds is not None else {}),
    }


def paired_difference(
    scores_a: np.ndarray | Sequence[np.ndarray],
    scores_b: np.ndarray | Sequence[np.ndarray],
    labels: np.ndarray,
    metric: str = "auc",
    n_boot: int = 1000,
    rng: np.random.Generator | None = None,
    level: float = 0.95,
    fold_seeds: bool = False,
) -> dict[str, Any]:
    """Paired bootstrap of ``metric(b) - metric(a)`` (seed-averaged) on the same test samples.

    Both models see the same resampled indices in each resample; with ``fold_seeds`` each model's seeds are
    drawn with replacement as well, independently (the networks of a and b are trained independently).
    Returns ``a``, ``b`` (as ``bootstrap_metric``) and ``diff``: ``value``, ``ci``, ``p_le_0`` (fraction of
    resamples with diff <= 0).
    """
    stat = STATISTICS[metric]
    sa, sb = _as_seeds(scores_a), _as_seeds(scores_b)
    y = np.asarray(labels).astype(int)
    if sa.shape[1] != y.size or sb.shape[1] != y.size:
        raise ValueError(f"scores ({sa.shape}, {sb.shape}) and labels ({y.size}) differ in length")
    rng = rng if rng is not None else np.random.default_rng(0)
    idx = stratified_indices(y, n_boot, rng)
    draws_a = seed_draws(sa.shape[0], n_boot, rng, fold_seeds)
    draws_b = seed_draws(sb.shape[0], n_boot, rng, fold_seeds)
    boot_a = _seed_mean(_seed_stats(stat, sa, y, idx), draws_a)
    boot_b = _seed_mean(_seed_stats(stat, sb, y, idx), draws_b)
    a = bootstrap_metric(sa, y, metric, indices=idx, level=level, seeds=draws_a)
    b = bootstrap_metric(sb, y, metric, indices=idx, level=level, seeds=draws_b)
    d = boot_b - boot_a
    lo, hi = _interval(d, level)
    finite = d[np.isfinite(d)]
    return {
        "a": a,
        "b": b,
        "diff": {
            "value": b["value"] - a["value"],
            "ci": [lo, hi],
            "p_le_0": float(np.mean(finite <= 0)) if finite.size else float("nan"),
        },
    }

"""Detection metrics of a score that is not a probability (the fit detector's Delta chi^2), as the CNNs'.

- ``split_metrics`` block (as ``metrics.json`` of a CNN run and ``lensml.analysis.reference``): AUC, recall at
  FPR 1 % / 5 %, ROC, per mass bin; the scores enter as their ranks / (n + 1) (AUCs and recalls depend on the
  order only);
- ``eval_metrics.json`` block (as ``lensml.evaluate``): per variant ``auc`` and ``recall_at_fpr5`` with
  stratified-bootstrap 95 % intervals (``lensml.analysis.bootstrap``) and the ROC; paired differences;
- ``intervals``: AUC and recall at FPR 1 / 5 / 10 % with bootstrap intervals, overall and per mass bin
  (positives in the bin against all negatives), and the detection rate at FPR 5 % vs log10 mass
  (``lensml.analysis.sensitivity.binned_rate``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from lensml.analysis.bootstrap import (
    auc_rows,
    bootstrap_metric,
    paired_difference,
    recall_at_fpr_rows,
    stratified_indices,
)
from lensml.analysis.sensitivity import binned_rate, detections
from lensml.models.metrics import bin_name, split_metrics

FPRS: dict[str, float] = {"recall_at_fpr1": 0.01, "recall_at_fpr5": 0.05, "recall_at_fpr10": 0.10}


def rank_probs(scores: np.ndarray) -> np.ndarray:
    """Scores -> ranks / (n + 1) in (0, 1) (order preserved, exact in float32)."""
    s = np.asarray(scores, dtype=np.float64)
    return rankdata(s) / (s.size + 1.0)


def _with_ci(stat, scores: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> dict[str, Any]:  # noqa: ANN001
    full = float(stat(scores[None, :], labels[None, :])[0])
    boot = stat(scores[idx], labels[idx])
    boot = boot[np.isfinite(boot)]
    lo, hi = np.quantile(boot, [0.025, 0.975]) if boot.size else (np.nan, np.nan)
    return {"value": full, "ci": [float(lo), float(hi)]}


def intervals(
    scores: np.ndarray,
    labels: np.ndarray,
    mass: np.ndarray,
    edges_log10: Sequence[float],
    n_boot: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """AUC and recall at ``FPRS`` with bootstrap 95 % intervals, overall and per mass bin; rate vs mass."""
    s, y = np.asarray(scores, float), np.asarray(labels).astype(int)
    stats = {"auc": auc_rows, **{k: (lambda a, b, f=f: recall_at_fpr_rows(a, b, f)) for k, f in FPRS.items()}}

    def block(sel: np.ndarray) -> dict[str, Any]:
        ss, yy = s[sel], y[sel]
        out: dict[str, Any] = {"n": int(sel.sum()), "n_pos": int(yy.sum())}
        if yy.all() or not yy.any():
            return out
        idx = stratified_indices(yy, n_boot, rng)
        out.update({k: _with_ci(f, ss, yy, idx) for k, f in stats.items()})
        return out

    out: dict[str, Any] = {"overall": block(np.ones_like(y, bool)), "per_mass_bin": {}}
    logm = np.log10(np.maximum(np.asarray(mass, float), 1e-30))
    for lo, hi in zip(edges_log10[:-1], edges_log10[1:]):
        sel = (y == 0) | ((logm >= lo) & (logm < hi))
        out["per_mass_bin"][bin_name(lo, hi)] = {"lo_msun": 10.0**lo, "hi_msun": 10.0**hi, **block(sel)}
    if y.any() and not y.all():
        det = detections(s, y, 0.05)[y == 1]
        lm = logm[y == 1]
        step = 0.25
        m_edges = np.arange(np.floor(lm.min() / step) * step, lm.max() + step, step)
        out["rate_vs_log10_mass_fpr5"] = binned_rate(det.astype(float), lm, m_edges, rng, n_boot)
    return out


def detector_metrics(
    scores: Mapping[str, np.ndarray],
    labels: np.ndarray,
    mass: np.ndarray,
    edges_log10: Sequence[float],
    n_boot: int,
    seed: int,
    compare: Sequence[Sequence[str]] = (),
) -> dict[str, Any]:
    """``{"split_metrics", "intervals", "eval"}`` of every detector in ``scores`` (name -> (n,))."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels).astype(int)
    out: dict[str, Any] = {"split_metrics": {}, "intervals": {}}
    variants: dict[str, Any] = {}
    for name, s in scores.items():
        p = rank_probs(s)
        out["split_metrics"][name] = split_metrics(p, y, mass, list(edges_log10))
        out["intervals"][name] = intervals(s, y, mass, edges_log10, n_boot, rng)
        variants[name] = {
            "runs": [],
            "auc": bootstrap_metric(p, y, "auc", n_boot=n_boot, rng=rng),
            "recall_at_fpr5": bootstrap_metric(p, y, "recall_at_fpr5", n_boot=n_boot, rng=rng),
            "roc": [out["split_metrics"][name]["roc"]],
        }
    comparisons = []
    for a, b in compare:
        if a in scores and b in scores:
            comp: dict[str, Any] = {"a": a, "b": b}
            for m in ("auc", "recall_at_fpr5"):
                comp[m] = paired_difference(
                    rank_probs(scores[a]), rank_probs(scores[b]), y, m, n_boot=n_boot, rng=rng
                )["diff"]
            comparisons.append(comp)
    out["eval"] = {"n": int(y.size), "n_pos": int(y.sum()), "variants": variants, "comparisons": comparisons}
    return out

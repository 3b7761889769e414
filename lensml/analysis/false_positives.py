"""False-positive rate under hard negatives, at the threshold a detector was operated at on clean data.

A detector is operated at the threshold that gives 5 % false positives on a *reference* test condition (no
lens multipoles, no clumps with their own velocities). On a *shifted* condition (multipoles of a given
amplitude, clumps of a given number and velocity), the negatives' scores above that threshold are the false
positives a lens modeller would call subhalos. Per variant (seed-averaged) and condition: FPR at the reference
threshold with a bootstrap 95 % interval over the shifted negatives (the threshold is held fixed: it is a
property of the detector as operated), and the paired difference between two variants (e.g. flux+velocity
minus flux-only) on the same resampled negatives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lensml.analysis.bootstrap import threshold_at_fpr


def fpr_at_threshold(neg_scores: np.ndarray, threshold: float) -> float:
    """Fraction of negatives whose score exceeds ``threshold`` (detections are ``score > t``)."""
    neg = np.asarray(neg_scores, dtype=np.float64)
    return float(np.mean(neg > threshold)) if neg.size else float("nan")


def _interval(values: np.ndarray) -> list[float]:
    return [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))]


def shifted_fpr(
    ref_neg: np.ndarray, shifted_neg: np.ndarray, fpr: float, boot: np.ndarray
) -> tuple[float, np.ndarray]:
    """Seed-averaged FPR on ``shifted_neg`` (S, n) at each seed's threshold from ``ref_neg`` (S, m), and its
    values on the resampled negatives ``boot`` (n_boot, n)."""
    thr = np.array([threshold_at_fpr(r, fpr) for r in ref_neg])[:, None]
    value = float(np.mean([fpr_at_threshold(s, t) for s, t in zip(shifted_neg, thr[:, 0], strict=True)]))
    per_boot = (shifted_neg[:, boot] > thr[:, :, None]).mean(axis=2).mean(axis=0)
    return value, per_boot


def false_positive_table(
    scores: Mapping[str, Mapping[str, np.ndarray]],
    labels: Mapping[str, np.ndarray],
    reference: str,
    compare: Sequence[Sequence[str]] = (),
    fpr: float = 0.05,
    n_boot: int = 1000,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """``scores[variant][condition]`` (S seeds, n samples) and ``labels[condition]`` -> per condition and
    variant the FPR at the reference threshold (``value``, ``ci``) and the paired differences b - a."""
    rng = rng if rng is not None else np.random.default_rng(0)
    out: dict[str, Any] = {"reference": reference, "fpr_reference": fpr, "conditions": {}}
    ref_neg = {v: np.atleast_2d(s[reference])[:, labels[reference] == 0] for v, s in scores.items()}
    for cond, y in labels.items():
        neg = np.flatnonzero(np.asarray(y) == 0)
        boot = rng.integers(0, neg.size, size=(n_boot, neg.size))
        entry: dict[str, Any] = {"n_neg": int(neg.size), "variants": {}, "comparisons": []}
        per_boot = {}
        for v, s in scores.items():
            value, pb = shifted_fpr(ref_neg[v], np.atleast_2d(s[cond])[:, neg], fpr, boot)
            per_boot[v] = pb
            entry["variants"][v] = {"value": value, "ci": _interval(pb)}
        for a, b in compare:
            if a in per_boot and b in per_boot:
                d = per_boot[b] - per_boot[a]
                diff = entry["variants"][b]["value"] - entry["variants"][a]["value"]
                entry["comparisons"].append({"a": a, "b": b, "value": float(diff), "ci": _interval(d)})
        out["conditions"][cond] = entry
    return out

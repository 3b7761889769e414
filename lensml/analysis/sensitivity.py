"""Detection rate at a fixed false-positive rate vs subhalo mass and vs distance from the arc.

Convention: for each run (seed) and test condition, the threshold is set on that condition's negatives so that
FPR <= ``fpr`` (``lensml.analysis.bootstrap.threshold_at_fpr``); a positive is detected if its score is above
it. The rate in a bin is the mean over seeds and over the positives in the bin; its 95 % interval is a
percentile bootstrap over those positives (seed-averaged detections resampled). Distance from the arc: the
distance (arcsec) from the subhalo to the nearest pixel of the arc mask (0 on the arc,
``lensml.analysis.scoring.arc_geometry``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lensml.analysis.bootstrap import threshold_at_fpr


def detections(probs: np.ndarray, labels: np.ndarray, fpr: float) -> np.ndarray:
    """Boolean detection of every sample at the threshold giving FPR <= ``fpr`` on the negatives."""
    t = threshold_at_fpr(probs[labels == 0], fpr)
    return probs > t


def binned_rate(
    det: np.ndarray, x: np.ndarray, edges: np.ndarray, rng: np.random.Generator, n_boot: int = 1000
) -> dict[str, list[Any]]:
    """Rate of ``det`` (n,) (seed-averaged per positive) in bins of ``x``, with bootstrap intervals."""
    rate, lo, hi, count = [], [], [], []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (x >= a) & (x < b)
        d = det[sel]
        count.append(int(sel.sum()))
        if d.size == 0:
            rate.append(None), lo.append(None), hi.append(None)
            continue
        boot = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
        rate.append(float(d.mean()))
        lo.append(float(np.quantile(boot, 0.025)))
        hi.append(float(np.quantile(boot, 0.975)))
    return {"edges": [float(e) for e in edges], "rate": rate, "lo": lo, "hi": hi, "n": count}


def sensitivity_curves(
    spec: dict[str, Any],
    runs: dict[str, Any],
    preds: dict[str, dict[str, dict[str, np.ndarray]]],
    by_variant: Callable[..., dict[str, list[str]]],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Curves per variant: ``vs_mass`` (pooled over ``spec.conditions``) and ``vs_distance`` per condition.

    ``spec``: ``conditions`` (names of evaluated conditions), ``fpr`` (default 0.05), ``mass_step_dex``
    (default 0.25), ``distance_edges_arcsec``, ``distance_conditions`` (default: all ``conditions``).
    """
    fpr = float(spec.get("fpr", 0.05))
    step = float(spec.get("mass_step_dex", 0.25))
    d_edges = np.asarray(spec.get("distance_edges_arcsec", [0.0, 0.05, 0.1, 0.2, 0.4, 2.0]), dtype=float)
    conds = list(spec["conditions"])
    d_conds = list(spec.get("distance_conditions", conds))
    out: dict[str, Any] = {"fpr": fpr, "conditions": conds, "variants": {}}
    for variant in by_variant(runs, preds[conds[0]]):
        logm, det_m = [], []
        per_dist: dict[str, Any] = {}
        for c in conds:
            names = by_variant(runs, preds[c])[variant]
            y = preds[c][names[0]]["label"].astype(int)
            det = np.mean([detections(preds[c][n]["probs"], y, fpr) for n in names], axis=0)
            pos = y == 1
            logm.append(np.log10(preds[c][names[0]]["mass_msun"][pos]))
            det_m.append(det[pos])
            if c in d_conds:
                dist = preds[c][names[0]]["arc_distance_arcsec"][pos]
                per_dist[c] = binned_rate(det[pos], dist, d_edges, rng)
        lm, dm = np.concatenate(logm), np.concatenate(det_m)
        m_edges = np.arange(np.floor(lm.min() / step) * step, lm.max() + step, step)
        out["variants"][variant] = {"vs_mass": binned_rate(dm, lm, m_edges, rng), "vs_distance": per_dist}
    return out


def m50(edges_log10: list[float], rate: list[float | None], lo: list[float | None], hi: list[float | None],
        level: float = 0.5) -> dict[str, float | None]:
    """M50: the mass (M_sun) where the binned detection rate first reaches ``level``, log-linear between bin
    centres, and its 95 % interval from where the rate's upper (``hi``) and lower (``lo``) bounds reach it.
    ``None`` where the curve never reaches the level in the binned range (the mass is above the last bin)."""
    centres = 0.5 * (np.asarray(edges_log10[:-1]) + np.asarray(edges_log10[1:]))

    def crossing(y: list[float | None]) -> float | None:
        pts = [(c, v) for c, v in zip(centres, y, strict=True) if v is not None]
        for (c0, v0), (c1, v1) in zip(pts[:-1], pts[1:]):
            if v0 < level <= v1:
                return float(10 ** (c0 + (level - v0) * (c1 - c0) / (v1 - v0)))
        if pts and pts[0][1] >= level:
            return float(10 ** pts[0][0])
        return None

    return {"value": crossing(rate), "lo": crossing(hi), "hi": crossing(lo)}

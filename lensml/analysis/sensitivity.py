"""Detection rate at a fixed false-positive rate vs subhalo mass and vs distance from the arc.

Convention: for each run (seed) and test condition, the threshold is set on that condition's negatives so that
FPR <= ``fpr`` (``lensml.analysis.bootstrap.threshold_at_fpr``); a positive is detected if its score is above
it. The rate in a bin is the mean over seeds and over the positives in the bin; its 95 % interval is a
percentile bootstrap over those positives (seed-averaged detections resampled). Distance from the arc: the
distance (arcsec) from the subhalo to the nearest pixel of the arc mask (0 on the arc,
``lensml.analysis.scoring.arc_geometry``).

M50 (spec ``m50: true``): the mass where the binned rate first reaches 50 %, with a bootstrap interval
(``m50_bootstrap``): every resample redraws the positives (the same indices for every variant: the test sets
are identical) and, with ``fold_seeds``, each variant's network seeds; thresholds stay those of the full
negatives. The paired difference Delta log10 M50 (b - a) of a study's ``compare`` pairs uses the same
resamples.
A resample whose curve never reaches 50 % has M50 above the binned range (counted, reported as a fraction).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lensml.analysis.bootstrap import seed_draws, threshold_at_fpr


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
    compare: list[list[str]] | None = None,
    fold_seeds: bool = False,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Curves per variant: ``vs_mass`` (pooled over ``spec.conditions``) and ``vs_distance`` per condition;
    with ``spec.m50``, ``m50`` per variant and ``m50_comparisons`` for the ``compare`` pairs (module doc).

    ``spec``: ``conditions`` (names of evaluated conditions), ``fpr`` (default 0.05), ``mass_step_dex``
    (default 0.25) or ``mass_edges_log10`` (explicit bin edges, log10 M_sun), ``distance_edges_arcsec``,
    ``distance_conditions`` (default: all ``conditions``), ``m50`` (default false).
    """
    fpr = float(spec.get("fpr", 0.05))
    step = float(spec.get("mass_step_dex", 0.25))
    d_edges = np.asarray(spec.get("distance_edges_arcsec", [0.0, 0.05, 0.1, 0.2, 0.4, 2.0]), dtype=float)
    conds = list(spec["conditions"])
    d_conds = list(spec.get("distance_conditions", conds))
    out: dict[str, Any] = {"fpr": fpr, "conditions": conds, "variants": {}}
    per_seed: dict[str, np.ndarray] = {}
    for variant in by_variant(runs, preds[conds[0]]):
        logm, det_m, det_s = [], [], []
        per_dist: dict[str, Any] = {}
        for c in conds:
            names = by_variant(runs, preds[c])[variant]
            y = preds[c][names[0]]["label"].astype(int)
            det_seeds = np.stack([detections(preds[c][n]["probs"], y, fpr) for n in names])
            det = det_seeds.mean(axis=0)
            pos = y == 1
            logm.append(np.log10(preds[c][names[0]]["mass_msun"][pos]))
            det_m.append(det[pos])
            det_s.append(det_seeds[:, pos])
            if c in d_conds:
                dist = preds[c][names[0]]["arc_distance_arcsec"][pos]
                per_dist[c] = binned_rate(det[pos], dist, d_edges, rng)
        lm, dm = np.concatenate(logm), np.concatenate(det_m)
        if spec.get("mass_edges_log10"):
            m_edges = np.asarray(spec["mass_edges_log10"], dtype=float)
        else:
            m_edges = np.arange(np.floor(lm.min() / step) * step, lm.max() + step, step)
        out["variants"][variant] = {"vs_mass": binned_rate(dm, lm, m_edges, rng), "vs_distance": per_dist}
        per_seed[variant] = np.concatenate(det_s, axis=1)
    if spec.get("m50") and per_seed:
        _add_m50(out, lm, m_edges, per_seed, compare or [], rng, fold_seeds, n_boot)
    return out


def _add_m50(out: dict[str, Any], logm: np.ndarray, edges: np.ndarray, per_seed: dict[str, np.ndarray],
             compare: list[list[str]], rng: np.random.Generator, fold_seeds: bool, n_boot: int) -> None:
    """``out["variants"][v]["m50"]`` and ``out["m50_comparisons"]`` (module docstring)."""
    idx = rng.integers(0, logm.size, size=(n_boot, logm.size))
    boot: dict[str, np.ndarray] = {}
    for v, det in per_seed.items():
        draws = seed_draws(det.shape[0], n_boot, rng, fold_seeds)
        boot[v] = m50_bootstrap(logm, det, edges, idx, draws)
        full = m50_bootstrap(logm, det, edges, np.arange(logm.size)[None, :], None)[0]
        out["variants"][v]["m50"] = m50_stats(full, boot[v])
    out["m50_comparisons"] = []
    for a, b in compare:
        if a in boot and b in boot:
            with np.errstate(invalid="ignore"):
                d = boot[b] - boot[a]
            ok = np.isfinite(d)
            fa = out["variants"][a]["m50"]["log10"]
            fb = out["variants"][b]["m50"]["log10"]
            out["m50_comparisons"].append({
                "a": a, "b": b,
                "dlog10": fb - fa if fa is not None and fb is not None else None,
                "ci": [float(np.quantile(d[ok], 0.025)), float(np.quantile(d[ok], 0.975))] if ok.mean() > 0.95
                else None,
                "frac_defined": float(ok.mean()),
                "p_le_0": float(np.mean(d[ok] <= 0)) if ok.any() else None,
            })


def m50_stats(full: float, boot: np.ndarray) -> dict[str, Any]:
    """M50 (M_sun), its log10 and 95 % interval from ``boot`` (log10 per resample; inf: above the range)."""
    above = float(np.mean(~np.isfinite(boot)))
    with np.errstate(invalid="ignore"):
        lo, hi = np.quantile(np.where(np.isfinite(boot), boot, np.inf), [0.025, 0.975], method="lower")
    return {
        "value": float(10**full) if np.isfinite(full) else None,
        "log10": float(full) if np.isfinite(full) else None,
        "ci": [float(10**lo) if np.isfinite(lo) else None, float(10**hi) if np.isfinite(hi) else None],
        "frac_above_range": above,
    }


def m50_bootstrap(logm: np.ndarray, det: np.ndarray, edges: np.ndarray, idx: np.ndarray,
                  seeds: np.ndarray | None, level: float = 0.5) -> np.ndarray:
    """(R,) log10 M50 per resample: positives ``idx`` (R, n) of ``logm`` (n,) with detections ``det`` (S, n)
    averaged over the seeds ``seeds`` (R, S) (all seeds if None); binned in ``edges``; the first crossing
    of ``level``, linear in log10 M between bin centres; +inf if never reached (the first bin's centre if
    reached there)."""
    centres = 0.5 * (edges[:-1] + edges[1:])
    nb = centres.size
    out = np.full(idx.shape[0], np.inf)
    for r in range(idx.shape[0]):
        d = det.mean(axis=0) if seeds is None else det[seeds[r]].mean(axis=0)
        x, w = logm[idx[r]], d[idx[r]]
        k = np.digitize(x, edges) - 1
        ok = (k >= 0) & (k < nb)
        cnt = np.bincount(k[ok], minlength=nb)
        tot = np.bincount(k[ok], weights=w[ok], minlength=nb)
        has = cnt > 0
        c, y = centres[has], tot[has] / cnt[has]
        if y.size and y[0] >= level:
            out[r] = c[0]
            continue
        hit = np.flatnonzero((y[:-1] < level) & (y[1:] >= level))
        if hit.size:
            j = hit[0]
            out[r] = c[j] + (level - y[j]) * (c[j + 1] - c[j]) / (y[j + 1] - y[j])
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

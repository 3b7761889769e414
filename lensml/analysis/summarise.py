"""Study predictions -> summary statistics (the numbers the report shows).

Per condition and variant: seed-averaged ROC AUC and recall at FPR 5 % (a study's ``metrics`` list may add
``recall_at_fpr1`` / ``recall_at_fpr10``) with stratified-bootstrap 95 % intervals (``fold_seeds: true``: the
network seeds resampled too) and the per-seed values (``lensml.analysis.bootstrap``), per-seed ROC curves;
paired differences (b - a) for the study's ``compare`` pairs; optional sensitivity curves and M50
(``lensml.analysis.sensitivity``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch

from lensml.analysis.bootstrap import bootstrap_metric, paired_difference
from lensml.analysis.scoring import Run
from lensml.analysis.sensitivity import sensitivity_curves
from lensml.errors import DataError
from lensml.models.metrics import roc_points

METRICS = ("auc", "recall_at_fpr5")
Preds = dict[str, dict[str, dict[str, np.ndarray]]]


def by_variant(runs: dict[str, Run], preds: dict[str, dict[str, np.ndarray]]) -> dict[str, list[str]]:
    """variant -> its run names sorted by seed (only runs scored in ``preds``)."""
    out: dict[str, list[str]] = defaultdict(list)
    for name in sorted(preds, key=lambda n: (runs[n].meta.get("variant"), runs[n].meta.get("seed") or 0)):
        out[str(runs[name].meta.get("variant"))].append(name)
    return dict(out)


def _stack(preds: dict[str, dict[str, np.ndarray]], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    labels = preds[names[0]]["label"]
    for n in names[1:]:
        if not np.array_equal(preds[n]["label"], labels):
            raise DataError(f"runs {names[0]} and {n} were scored on different test sets; cannot pair them")
    return np.stack([preds[n]["probs"].astype(np.float64) for n in names]), labels.astype(int)


def _roc(scores: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """ROC points (<= 60) of one seed, rounded to 4 decimals for a compact summary."""
    roc = roc_points(
        torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(labels).long(), max_points=60
    )
    return {k: [round(float(x), 4) for x in v] for k, v in roc.items()}


def summarise_condition(
    preds: dict[str, dict[str, np.ndarray]],
    runs: dict[str, Run],
    compare: list[list[str]],
    n_boot: int,
    rng: np.random.Generator,
    metrics: tuple[str, ...] = METRICS,
    fold_seeds: bool = False,
) -> dict[str, Any]:
    groups = by_variant(runs, preds)
    first = next(iter(preds.values()))
    out: dict[str, Any] = {
        "n": int(first["label"].size),
        "n_pos": int(first["label"].sum()),
        "variants": {},
        "comparisons": [],
    }
    for variant, names in groups.items():
        scores, labels = _stack(preds, names)
        entry: dict[str, Any] = {"runs": names}
        for m in metrics:
            entry[m] = bootstrap_metric(scores, labels, m, n_boot=n_boot, rng=rng, fold_seeds=fold_seeds)
        entry["roc"] = [_roc(s, labels) for s in scores]
        out["variants"][variant] = entry
    for a, b in compare:
        if a not in groups or b not in groups:
            continue
        sa, labels = _stack(preds, groups[a])
        sb, labels_b = _stack(preds, groups[b])
        if not np.array_equal(labels, labels_b):
            raise DataError(f"variants {a} and {b} were scored on different test sets; cannot pair them")
        comp: dict[str, Any] = {"a": a, "b": b}
        for m in metrics:
            comp[m] = paired_difference(
                sa, sb, labels, m, n_boot=n_boot, rng=rng, fold_seeds=fold_seeds
            )["diff"]
        out["comparisons"].append(comp)
    return out


def versus_null(
    null: dict[str, dict[str, np.ndarray]],
    cond: dict[str, dict[str, np.ndarray]],
    runs: dict[str, Run],
    n_boot: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Per variant: paired AUC(condition) - AUC(null condition) on the same sample indices.

    The null condition is a test set whose subhalos carry (almost) no signal; both test sets share the
    negatives and the lens/source of every sample, so this difference isolates the effect of the subhalo
    mass from whatever else separates the classes in that particular test set.
    """
    out: dict[str, Any] = {}
    gn, gc = by_variant(runs, null), by_variant(runs, cond)
    for variant, names in gc.items():
        if variant not in gn:
            continue
        s_null, y_null = _stack(null, gn[variant])
        s_cond, y_cond = _stack(cond, names)
        if not np.array_equal(y_null, y_cond):
            raise DataError(
                f"null and tested conditions of {variant} have different labels; cannot pair them"
            )
        out[variant] = paired_difference(s_null, s_cond, y_cond, "auc", n_boot=n_boot, rng=rng)["diff"]
    return out


def summarise(
    study: dict[str, Any], runs: dict[str, Run], preds: Preds, n_boot: int, rng: np.random.Generator
) -> dict[str, Any]:
    """``conditions`` (per condition: overrides, variants, comparisons) and ``sensitivity`` if configured."""
    compare = [list(p) for p in study.get("compare") or []]
    metrics = tuple(study.get("metrics") or METRICS)
    fold = bool(study.get("fold_seeds", False))
    conds = {}
    for cname, cond in (study.get("evaluate") or {}).items():
        conds[cname] = {
            "overrides": list(cond),
            **summarise_condition(preds[cname], runs, compare, n_boot, rng, metrics, fold),
        }
    out: dict[str, Any] = {
        "n_boot": n_boot,
        "conditions": conds,
        "statistics": "seed-averaged metric; stratified bootstrap over test samples"
        + (" and over network seeds (drawn with replacement)" if fold else "")
        + ", percentile 95% interval; paired: same resampled indices for both",
    }
    if fold:
        out["seeds_folded"] = True
    null = study.get("null_condition")
    if null:
        out["null_condition"] = null
        for cname in conds:
            if cname != null:
                conds[cname]["vs_null"] = versus_null(preds[null], preds[cname], runs, n_boot, rng)
    if study.get("sensitivity"):
        out["sensitivity"] = sensitivity_curves(
            study["sensitivity"], runs, preds, by_variant, rng,
            compare=compare, fold_seeds=fold, n_boot=n_boot,
        )
    if study.get("false_positives"):
        out["false_positives"] = _false_positives(study["false_positives"], runs, preds, n_boot, rng)
    return out


def _false_positives(
    spec: dict[str, Any], runs: dict[str, Run], preds: Preds, n_boot: int, rng: np.random.Generator
) -> dict[str, Any]:
    """``spec``: ``reference`` condition, optional ``conditions`` (default: all) and ``compare`` pairs."""
    from lensml.analysis.false_positives import false_positive_table

    conds = list(spec.get("conditions") or preds)
    if spec["reference"] not in conds:
        conds.insert(0, spec["reference"])
    scores: dict[str, dict[str, np.ndarray]] = {}
    labels: dict[str, np.ndarray] = {}
    for cond in conds:
        for variant, names in by_variant(runs, preds[cond]).items():
            s, labels[cond] = _stack(preds[cond], names)
            scores.setdefault(variant, {})[cond] = s
    return false_positive_table(
        scores, labels, spec["reference"], spec.get("compare") or [], float(spec.get("fpr", 0.05)), n_boot,
        rng,
    )


def compact_predictions(preds: Preds) -> dict[str, np.ndarray]:
    """Archive of the predictions: ``<cond>__<run>__probs`` (float32: barely trained networks differ by
    less than float16 resolution) and per condition the labels,
    masses and arc distances (``<cond>__label`` ...)."""
    out: dict[str, np.ndarray] = {}
    for cname, per_run in preds.items():
        first = next(iter(per_run.values()))
        out[f"{cname}__label"] = first["label"].astype(np.int8)
        out[f"{cname}__mass_msun"] = first["mass_msun"].astype(np.float32)
        out[f"{cname}__arc_distance_arcsec"] = first["arc_distance_arcsec"].astype(np.float32)
        for name, p in per_run.items():
            out[f"{cname}__{name}__probs"] = p["probs"].astype(np.float32)
    return out


def examples(study: dict[str, Any], runs: dict[str, Run], preds: Preds, n: int) -> dict[str, np.ndarray]:
    """A few test samples for the report: the first negative and the first positive of each condition in
    ``study.examples.conditions`` (re-rendered: sample i of the test split is a pure function of the seed)."""
    from lensml.analysis.scoring import compose_train_config, merge_overrides
    from lensml.data.cache import physics_config
    from lensml.sim.simulator import build_simulator

    spec = study["examples"]
    run = next(iter(runs.values()))
    rows: list[dict[str, np.ndarray]] = []
    for k, cname in enumerate(spec["conditions"][:n]):
        cond = (study.get("evaluate") or {})[cname]
        cfg = compose_train_config(
            merge_overrides(run.overrides, [*study.get("common", []), *cond]), run.run_dir
        )
        labels = next(iter(preds[cname].values()))["label"]
        want = 1 if k > 0 or len(spec["conditions"]) == 1 else 0
        idx = int(np.flatnonzero(labels == want)[0]) if (labels == want).any() else 0
        b = build_simulator(physics_config(cfg)).sample_batch(int(cfg.data.seed), "test", [idx])
        rows.append(
            {
                key: np.asarray(b[key])
                for key in ("flux", "velocity", "mask", "label", "mass_msun", "sub_x_arcsec", "sub_y_arcsec")
            }
        )
        pixel_scale = float(cfg.instrument.pixel_scale_arcsec)
    out = {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}
    out["flux"] = out["flux"].astype(np.float16)
    out["velocity"] = out["velocity"].astype(np.float16)
    out["pixel_scale_arcsec"] = np.array(pixel_scale)
    return out

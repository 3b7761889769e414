"""Fit-then-detect beside the CNNs on the same test samples: a study's ``fit_detect`` block.

For each listed test condition of a study, samples ``0 .. n-1`` of that condition's test set (the CNNs' first
``n`` test samples: sample i is a pure function of ``(data.seed, "test", i)``; checked through the labels) are
fitted by ``lensml.fit_detect.run_fits`` for each data set (cached per (sample, data set): a study
resumes).
Per condition: AUC and recall at FPR 1 / 5 / 10 % of the fit detectors (score: Delta chi^2) and of every CNN
variant restricted to the same samples (seed-averaged), with stratified-bootstrap 95 % intervals, and paired
differences (fit flux+velocity - fit flux; fit - CNN per data set). M50 of each detector over
``m50_conditions`` (one population in several mass bins; ``lensml.analysis.sensitivity.m50_bootstrap``).

Spec keys: ``conditions`` (``conditions_by_scale.<scale>`` wins), ``datasets`` (default [flux,
flux_velocity]), ``n_test`` (per scale name, e.g. ``{tiny: 2, cpu: 32}``), ``fit`` (``conf/fit_detect.yaml``
``fit.*`` values; ``fit_by_scale.<scale>`` wins), ``cnn`` (data set -> CNN variant it is paired with),
``hybrid`` (data set -> a variant trained on oracle residuals: scored as ``hybrid:<data set>`` on the
residuals about the fitted smooth model, ``lensml.analysis.hybrid``, beside ``oracle:<data set>``, the same
runs on the true residuals), ``m50_conditions``, ``mass_edges_log10``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from lensml.analysis.bootstrap import bootstrap_metric, paired_difference
from lensml.analysis.scoring import merge_overrides
from lensml.analysis.sensitivity import detections, m50_bootstrap, m50_stats
from lensml.errors import ConfigError, DataError

METRICS = ("auc", "recall_at_fpr1", "recall_at_fpr5", "recall_at_fpr10")


def fit_config(spec: dict[str, Any], condition: list[str], scale: str, out_dir: Path) -> Any:
    """``conf/fit_detect.yaml`` composed for one condition of the block at ``scale``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lensml.paths import CONF_DIR

    n = (spec.get("n_test") or {}).get(scale)
    if n is None:
        raise ConfigError(f"study fit_detect.n_test has no entry for scale={scale}; add e.g. {{{scale}: 32}}")
    fit = {**(spec.get("fit") or {}), **((spec.get("fit_by_scale") or {}).get(scale) or {})}
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("fit_detect")
    OmegaConf.update(cfg, "condition", list(condition), force_add=True)
    OmegaConf.update(cfg, "n_test", int(n))
    OmegaConf.update(cfg, "datasets", list(spec.get("datasets") or ["flux", "flux_velocity"]))
    OmegaConf.update(cfg, "out_dir", str(out_dir))
    for k, v in fit.items():
        if k not in cfg.fit:
            raise ConfigError(f"study fit_detect.fit.{k}: unknown fit setting; see conf/fit_detect.yaml")
        OmegaConf.update(cfg, f"fit.{k}", v, force_add=True)
    return cfg


def condition_overrides(study: dict[str, Any], cname: str) -> list[str]:
    """The train overrides that fix the test set of condition ``cname`` (the study's common ones, then the
    condition's: the variants' own overrides choose the network and channels, not the physics)."""
    if cname not in (study.get("evaluate") or {}):
        raise ConfigError(
            f"study fit_detect.conditions: {cname!r} is not one of the study's evaluate conditions"
        )
    return merge_overrides(list(study.get("common") or []), list(study["evaluate"][cname]))


def conditions_of(spec: dict[str, Any], scale: str) -> list[str]:
    """The block's conditions at ``scale`` (``conditions_by_scale.<scale>`` wins over ``conditions``)."""
    return list(((spec.get("conditions_by_scale") or {}).get(scale)) or spec["conditions"])


def run_fits_for(study: dict[str, Any], out_root: Path, shard: int = 0, n_shards: int = 1) -> None:
    """Fit (or resume) the conditions of this shard (condition k goes to shard k % n_shards)."""
    from lensml.fit_detect import run_fits

    spec = study["fit_detect"]
    for k, cname in enumerate(conditions_of(spec, study["scale"]["name"])):
        if k % n_shards == shard:
            cfg = fit_config(spec, condition_overrides(study, cname), study["scale"]["name"],
                             out_root / study["name"] / "fit_detect" / cname)
            run_fits(cfg)


def _hybrid(spec: dict[str, Any], runs: dict[str, Any], preds: dict[str, Any], groups: dict[str, list[str]],
            fits: dict[str, Any], condition: list[str], y: np.ndarray) -> dict[str, np.ndarray]:
    """``hybrid:<data set>`` (the oracle-residual runs of ``spec["hybrid"][data set]`` on the residuals about
    the fitted smooth models) and ``oracle:<data set>`` (the same runs on the true residuals), (runs, n)."""
    from lensml.analysis.hybrid import fitted_residuals, hybrid_scores
    from lensml.data.cache import physics_config
    from lensml.inference import physics

    out: dict[str, np.ndarray] = {}
    sim = None
    for dataset, variant in (spec.get("hybrid") or {}).items():
        names = groups.get(variant) or []
        if not names or dataset not in fits["results"]:
            continue
        sim = sim or physics.build_simulator(physics_config(fits["pcfg"]))
        samples = fitted_residuals(sim, int(fits["data_seed"]), fits["results"][dataset])
        if not np.array_equal(np.asarray(samples["label"]).astype(int), y):
            raise DataError("fit_detect hybrid: the fitted samples' labels differ from the test set's")
        out[f"hybrid:{dataset}"] = hybrid_scores(runs, names, condition, samples)
        out[f"oracle:{dataset}"] = np.stack([preds[n]["probs"][: y.size] for n in names])
    return out


def summarise_fits(study: dict[str, Any], runs: dict[str, Any], preds: dict[str, Any], out_root: Path,
                   by_variant: Any, n_boot: int, rng: np.random.Generator) -> dict[str, Any]:
    """The block's summary: per condition the detectors' metrics and paired differences; M50; cost."""
    from lensml.fit_detect import cost, run_fits

    spec = study["fit_detect"]
    fold = bool(study.get("fold_seeds", False))
    cnn_of = spec.get("cnn") or {}
    out: dict[str, Any] = {"conditions": {}, "n_test": None, "cost": None}
    det_pos: dict[str, list[np.ndarray]] = {}
    logm_pos: list[np.ndarray] = []
    for cname in conditions_of(spec, study["scale"]["name"]):
        cfg = fit_config(spec, condition_overrides(study, cname), study["scale"]["name"],
                         out_root / study["name"] / "fit_detect" / cname)
        fits = run_fits(cfg)
        res = fits["results"]
        first = next(iter(res.values()))
        y = np.array([r["label"] for r in first], dtype=int)
        mass = np.array([r["mass_msun"] for r in first])
        scores: dict[str, np.ndarray] = {f"fit:{d}": np.array([[r["delta_chi2"] for r in rs]])
                                         for d, rs in res.items()}
        groups = by_variant(runs, preds[cname])
        for variant in cnn_of.values():
            names = groups.get(variant) or []
            if not names:
                continue
            yc = preds[cname][names[0]]["label"][: y.size].astype(int)
            if not np.array_equal(yc, y):
                raise DataError(f"fit_detect {cname}: the fitted samples are not the CNNs' test samples "
                                f"(labels differ from run {names[0]}); the condition's physics must match")
            scores[f"cnn:{variant}"] = np.stack([preds[cname][n]["probs"][: y.size] for n in names])
        scores.update(_hybrid(spec, runs, preds[cname], groups, fits, condition_overrides(study, cname), y))
        entry: dict[str, Any] = {"n": int(y.size), "n_pos": int(y.sum()), "detectors": {}, "comparisons": []}
        if y.all() or not y.any():
            out["conditions"][cname] = entry
            continue
        for name, s in scores.items():
            entry["detectors"][name] = {m: bootstrap_metric(s, y, m, n_boot=n_boot, rng=rng, fold_seeds=fold)
                                        for m in METRICS}
        pairs = [("fit:flux", "fit:flux_velocity")] + [(f"cnn:{v}", f"fit:{d}") for d, v in cnn_of.items()]
        pairs += [(f"{a}:{d}", f"hybrid:{d}") for d in (spec.get("hybrid") or {}) for a in ("fit", "oracle")]
        pairs += [("hybrid:flux", "hybrid:flux_velocity")]
        for a, b in pairs:
            if a in scores and b in scores:
                entry["comparisons"].append({"a": a, "b": b, **{
                    m: paired_difference(scores[a], scores[b], y, m, n_boot=n_boot, rng=rng,
                                         fold_seeds=fold)["diff"] for m in METRICS}})
        out["conditions"][cname] = entry
        out["n_test"] = int(y.size)
        out["cost"] = cost(res, fits["run"])
        if cname in (spec.get("m50_conditions") or []):
            pos = y == 1
            logm_pos.append(np.log10(mass[pos]))
            for name, s in scores.items():
                det = np.stack([detections(row, y, 0.05) for row in s])[:, pos]
                det_pos.setdefault(name, []).append(det)
    if logm_pos and spec.get("mass_edges_log10"):
        lm = np.concatenate(logm_pos)
        edges = np.asarray(spec["mass_edges_log10"], dtype=float)
        idx = rng.integers(0, lm.size, size=(n_boot, lm.size))
        out["m50"] = {}
        for name, parts in det_pos.items():
            det = np.concatenate(parts, axis=1).astype(float)
            full = m50_bootstrap(lm, det, edges, np.arange(lm.size)[None, :], None)[0]
            out["m50"][name] = m50_stats(full, m50_bootstrap(lm, det, edges, idx, None))
        out["m50_conditions"] = list(spec["m50_conditions"])
        out["m50_edges_log10"] = [float(e) for e in edges]
    return out

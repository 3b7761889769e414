"""``python -m lensml.fit_detect [overrides]``: the lens modeller's detector on a CNN test set (issue 15).

Samples ``0 .. n_test-1`` of the test split of ``condition`` (train overrides; sample i is a pure function of
``(data.seed, "test", i)``, exactly the CNNs' test samples) are fitted for each data set by
``lensml.inference.fit.detect`` (score: Delta chi^2 of smooth + subhalo over smooth). Each (sample, data set)
fit is cached as ``<out_dir>/fits/<key>/<data set>/<index>.json`` (atomic write; ``key`` hashes the physics,
data seed and fit settings), so a rerun skips finished fits. Writes ``metrics.json`` (``split_metrics`` per
data set, bootstrap intervals, cost) and ``eval_metrics.json`` (``lensml.evaluate``'s format, variants
``fit_detect:<data set>``) to ``out_dir``. Conventions: conf/fit_detect.yaml, docs/science.md.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from lensml.atomic_io import write_json
from lensml.cli import clean_errors
from lensml.errors import ConfigError

log = logging.getLogger(__name__)
VERSION = 1


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _setup(cfg: DictConfig) -> tuple[Any, int, DictConfig, dict[str, Any], str]:
    """(simulator, data seed, physics config, fit settings dict, cache key)."""
    from lensml.analysis.scoring import compose_train_config
    from lensml.data.cache import cache_config, config_hash, physics_config
    from lensml.inference import physics
    from lensml.inference.fit import settings_from
    from lensml.inference.fit_model import DATASETS

    bad = [d for d in cfg.datasets if d not in DATASETS]
    if bad or not cfg.datasets:
        raise ConfigError(f"datasets={list(cfg.datasets)}: use a non-empty subset of {list(DATASETS)}.")
    if int(cfg.n_test) < 2:
        raise ConfigError(f"n_test={cfg.n_test} must be >= 2 (both classes are needed for the metrics).")
    pcfg = compose_train_config(list(cfg.condition or []))
    if str(pcfg.source.kind) != "analytic":
        raise ConfigError("condition: the fitter models analytic disks; use source=analytic.")
    fit = OmegaConf.to_container(cfg.fit, resolve=True)
    settings_from(fit)  # validate early
    seed = int(pcfg.data.seed)
    phys = physics_config(pcfg)
    fit_key = {k: v for k, v in fit.items() if v is not None}  # a new optional setting keeps old caches
    key = config_hash({"version": VERSION, "cache": cache_config(phys, seed), "fit": fit_key})
    return physics.build_simulator(phys), seed, pcfg, fit, key


def fit_path(out_dir: Path, key: str, dataset: str, index: int) -> Path:
    return out_dir / "fits" / key / dataset / f"{index:06d}.json"


def run_fits(cfg: DictConfig, chunk: int = 8) -> dict[str, Any]:
    """Fit every missing (sample, data set); return the cached results and this run's cost."""
    import torch

    from lensml.inference.fit import detect, settings_from
    from lensml.inference.fit_model import Observed, fit_scene

    sim, seed, pcfg, fit, key = _setup(cfg)
    st = settings_from(fit)
    out = Path(cfg.out_dir)
    n = int(cfg.n_test)
    datasets = list(cfg.datasets)
    todo = [(i, d) for i in range(n) for d in datasets if not fit_path(out, key, d, i).exists()]
    log.info("fit_detect: %d of %d fits cached in %s", n * len(datasets) - len(todo), n * len(datasets), key)
    t0 = time.perf_counter()
    n_done = 0
    bar = tqdm(total=n * len(datasets), initial=n * len(datasets) - len(todo), desc="fits", unit="fit")
    need = sorted({i for i, _ in todo})
    for start in range(0, len(need), chunk):
        idx = need[start : start + chunk]
        samples = sim.sample_batch(seed, "test", idx)
        draws = sim.draw_batch(seed, "test", np.asarray(idx))
        for k, i in enumerate(idx):
            scene, truth = fit_scene(sim, draws, k)
            for d in datasets:
                path = fit_path(out, key, d, i)
                if path.exists():
                    continue
                obs = Observed.from_sample(samples, k, d)
                res = detect(sim, scene, obs, st, truth if st.start == "oracle" else None)
                res.update(
                    index=i,
                    dataset=d,
                    label=int(samples["label"][k]),
                    mass_msun=float(samples["mass_msun"][k]),
                    true_sub_xy_arcsec=[float(samples["sub_x_arcsec"][k]), float(samples["sub_y_arcsec"][k])],
                    true_theta_E_arcsec=float(truth[scene.names.index("macro.theta_E")]),  # diagnostics only
                )
                write_json(path, res)
                n_done += 1
                bar.update(1)
                bar.set_postfix(fits_per_min=f"{60 * n_done / (time.perf_counter() - t0):.2f}")
    bar.close()
    wall = time.perf_counter() - t0
    results = {d: [json.loads(fit_path(out, key, d, i).read_text()) for i in range(n)] for d in datasets}
    return {
        "key": key,
        "data_seed": seed,
        "pcfg": pcfg,
        "results": results,
        "run": {
            "fits_this_run": n_done,
            "wall_s": wall,
            "torch_threads": torch.get_num_threads(),
            "cpu": cpu_model(),
            "load_average_start": os.getloadavg()[0],
        },
    }


def cost(results: dict[str, list[dict]], run: dict[str, Any]) -> dict[str, Any]:
    """Seconds per fit (from every cached fit) and images per minute (all data sets of an image)."""
    per_image = np.sum([[r["timing_s"]["total"] for r in rs] for rs in results.values()], axis=0)
    out = {
        "seconds_per_fit_median": {
            d: float(np.median([r["timing_s"]["total"] for r in rs])) for d, rs in results.items()
        },
        "seconds_per_image_mean": float(per_image.mean()),
        "images_per_minute": float(60.0 / per_image.mean()),
        **run,
    }
    if run["fits_this_run"]:
        out["images_per_minute_this_run"] = (
            60.0 * run["fits_this_run"] / len(results) / max(run["wall_s"], 1e-9)
        )
    return out


def fit_detect(cfg: DictConfig) -> dict[str, Any]:
    """Run (or resume) the fits of ``cfg``, write and return ``metrics.json``'s content."""
    from lensml.analysis.fit_metrics import detector_metrics

    fits = run_fits(cfg)
    results, pcfg = fits["results"], fits["pcfg"]
    first = next(iter(results.values()))
    labels = np.array([r["label"] for r in first])
    mass = np.array([r["mass_msun"] for r in first])
    edges = list(cfg.mass_edges_log10 or pcfg.metrics.mass_edges_log10)
    scores = {f"fit_detect:{d}": np.array([r["delta_chi2"] for r in rs]) for d, rs in results.items()}
    names = list(scores)
    met = detector_metrics(
        scores,
        labels,
        mass,
        edges,
        int(cfg.n_boot),
        int(cfg.bootstrap_seed),
        [names[:2]] if len(names) > 1 else [],
    )
    chi2 = {
        d: {
            "chi2_smooth_over_dof_median_negatives": float(
                np.median(
                    [r["chi2_smooth"] / (r["n_data"] - r["n_params_smooth"]) for r in rs if r["label"] == 0]
                    or [np.nan]
                )
            ),
        }
        for d, rs in results.items()
    }
    out_dir = Path(cfg.out_dir)
    condition = list(cfg.condition or [])
    metrics = {
        "version": VERSION,
        "name": str(cfg.name),
        "condition": condition,
        "n": int(labels.size),
        "data_seed": fits["data_seed"],
        "cache_key": fits["key"],
        "fit": OmegaConf.to_container(cfg.fit, resolve=True),
        "noise": "reported error maps (flux_sigma, sigma_v_kms); velocity in the observed mask",
        "datasets": met["split_metrics"],
        "intervals": met["intervals"],
        "fit_quality": chi2,
        "cost": cost(results, fits["run"]),
    }
    write_json(out_dir / "metrics.json", metrics)
    write_json(
        out_dir / "eval_metrics.json",
        {"name": str(cfg.name), "condition": condition, "runs": {}, **met["eval"]},
    )
    return metrics


def summary_lines(m: dict[str, Any]) -> str:
    lines = [f"==== lensml.fit_detect {m['name']}: {' '.join(m['condition'])} (n={m['n']}) ===="]
    for name, iv in m["intervals"].items():
        o = iv["overall"]
        if "auc" not in o:
            lines.append(f"{name}: one class only")
            continue
        parts = [f"AUC {o['auc']['value']:.3f} [{o['auc']['ci'][0]:.3f}, {o['auc']['ci'][1]:.3f}]"]
        for k in ("recall_at_fpr1", "recall_at_fpr5", "recall_at_fpr10"):
            parts.append(f"{k[10:]} {o[k]['value']:.2f} [{o[k]['ci'][0]:.2f}, {o[k]['ci'][1]:.2f}]")
        lines.append(f"{name:26s} " + "  ".join(parts))
    c = m["cost"]
    lines.append(
        f"cost: {c['images_per_minute']:.2f} images/min ({c['seconds_per_image_mean']:.1f} s per image, "
        f"all data sets, {c['torch_threads']} thread(s), {c['cpu']})"
    )
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="../conf", config_name="fit_detect")
@clean_errors
def main(cfg: DictConfig) -> None:
    import torch

    torch.set_num_threads(int(cfg.num_threads or 1))
    metrics = fit_detect(cfg)
    print(summary_lines(metrics), flush=True)
    print(f"written: {Path(cfg.out_dir) / 'metrics.json'}", flush=True)


if __name__ == "__main__":
    main()

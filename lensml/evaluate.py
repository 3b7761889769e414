"""Score checkpoints on any test config: ``python -m lensml.evaluate runs=[...] condition=[...]``.

Re-composes each run's config with ``condition`` on top (``lensml.analysis.scoring``), renders the test split
once per distinct physics config, scores every checkpoint, and writes into ``out_dir`` (atomically):
``eval_metrics.json`` (per variant: seed-averaged ROC AUC and recall at FPR 5 % with bootstrap 95 %
intervals and per-seed values; paired differences), ``predictions.npz`` and ``roc.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from lensml.analysis.scoring import Run, load_run, score_runs
from lensml.analysis.summarise import by_variant, summarise_condition
from lensml.atomic_io import save_npz, write_json
from lensml.cli import clean_errors
from lensml.errors import ConfigError

log = logging.getLogger(__name__)


def variant_name(run: Run) -> str:
    from lensml.analysis.scoring import compose_train_config

    cfg = compose_train_config(run.overrides, run.run_dir)
    model, channels = str(cfg.model.name), str(cfg.data.channels)
    return model if channels == str(cfg.model.default_channels) else f"{model}:{channels}"


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.runs`` under ``cfg.condition``; write and return the metrics dict."""
    if not cfg.runs:
        raise ConfigError(
            "runs=[] is empty; pass lensml.train run dirs, e.g. 'runs=[outputs/train/2026-01-01/12-00-00]'"
        )
    runs: dict[str, Run] = {}
    for d in cfg.runs:
        run = load_run(d, str(cfg.checkpoint))
        run.meta["variant"] = variant_name(run)
        if run.name in runs:
            raise ConfigError(f"runs: two run dirs named {run.name!r}; pass run dirs with distinct names")
        runs[run.name] = run
    condition = list(cfg.condition or [])
    preds = score_runs(list(runs.values()), condition, n_test=cfg.n_test, progress=log.info)
    preds = {name: preds[run.name] for name, run in runs.items()}
    groups = by_variant(runs, preds)
    compare = [list(cfg.compare)] if cfg.compare else ([list(groups)[:2]] if len(groups) >= 2 else [])
    rng = np.random.default_rng(int(cfg.bootstrap_seed))
    metrics = {
        "name": str(cfg.name),
        "condition": condition,
        "runs": {n: str(r.run_dir) for n, r in runs.items()},
        **summarise_condition(preds, runs, compare, int(cfg.n_boot), rng),
    }
    out = Path(cfg.out_dir)
    write_json(out / "eval_metrics.json", metrics)
    save_npz(
        out / "predictions.npz",
        **{f"{n}__{k}": v for n, p in preds.items() for k, v in p.items() if k != "source_id"},
    )
    from lensml.analysis.plots import roc_figure
    from lensml.atomic_io import save_figure

    save_figure(out / "roc.png", roc_figure(metrics, title=f"{cfg.name}: {' '.join(condition) or 'nominal'}"))
    return metrics


def summary_lines(metrics: dict[str, Any]) -> str:
    lines = [
        f"==== lensml.evaluate {metrics['name']}: {' '.join(metrics['condition']) or '(no overrides)'} ===="
    ]
    for v, e in metrics["variants"].items():
        a, r = e["auc"], e["recall_at_fpr5"]
        lines.append(
            f"{v:28s} AUC {a['value']:.3f} [{a['ci'][0]:.3f}, {a['ci'][1]:.3f}]  "
            f"recall@FPR5% {r['value']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]  seeds={len(e['runs'])}"
        )
    for c in metrics["comparisons"]:
        d = c["auc"]
        lines.append(f"{c['b']} - {c['a']}: dAUC {d['value']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@clean_errors
def main(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    log.debug("%s", OmegaConf.to_yaml(cfg))
    metrics = evaluate(cfg)
    print(summary_lines(metrics), flush=True)
    print(f"written: {Path(cfg.out_dir) / 'eval_metrics.json'}", flush=True)


if __name__ == "__main__":
    main()

"""Run a named study of ``experiments/<study>.yaml``: ``python -m lensml.study study=headline [scale=tiny]``.

A study file (plain YAML, see ``docs/science.md``) holds:

- ``scales``: ``{tiny: {...}, full: {...}}`` with ``n_train, n_val, n_test, epochs, batch_size, seeds``;
- ``common``: ``lensml.train`` overrides of every run (and of ``runs_from``'s evaluations);
- ``train``: variants ``{name, overrides[, seeds]}``, each trained once per seed (``seed=s``; ``data.seed``
  stays fixed in ``common``, so all runs of a study see the same samples and the test sets are identical);
- ``runs_from``: ``{study: other, variants: [...]}`` re-uses another study's trained runs (same scale);
- ``evaluate``: test conditions ``name: [overrides]`` scored on every run (``lensml.analysis.scoring``);
- ``compare``: pairs ``[a, b]`` of variants: paired bootstrap of b - a on every condition;
- ``sensitivity`` / ``near_real``: extra analyses (``lensml.analysis.sensitivity``, ``.near_real``).

Stages (``stage=``): ``data`` (training caches), ``train``, ``evaluate``, ``summarise`` or ``all``.
``shard=k n_shards=n`` splits the train and evaluate jobs over processes. Every stage resumes: a finished run
(``metrics.json``) or evaluation (``<run>/eval/<condition>-<hash>.npz``) is not redone. The summary is
written to ``<summary_dir>/<study>.json``; ``python -m lensml.report`` turns summaries into the report.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from lensml.analysis import summarise as summ
from lensml.analysis.scoring import Run, compose_train_config, load_run, score_runs
from lensml.atomic_io import save_npz, write_json
from lensml.cli import clean_errors
from lensml.data.cache import cache_config, config_hash, generate_cache, physics_config
from lensml.errors import ConfigError

log = logging.getLogger(__name__)

EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "experiments"


def load_study(name: str) -> dict[str, Any]:
    """``experiments/<name>.yaml`` (or a path to a study file) as a dict. Read with OmegaConf's YAML loader,
    as every config: ``1.0e8`` is a float (PyYAML's YAML 1.1 resolver reads it as a string)."""
    path = Path(name) if name.endswith(".yaml") else EXPERIMENTS_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))
        raise ConfigError(f"study={name!r}: {path} does not exist; use one of {known}")
    study = OmegaConf.to_container(OmegaConf.load(path))
    study["name"] = path.stem
    return study


def scale_of(study: dict[str, Any], scale: str) -> dict[str, Any]:
    scales = study.get("scales", {})
    if scale not in scales:
        raise ConfigError(
            f"scale={scale!r} is not defined in experiments/{study['name']}.yaml; use {list(scales)}"
        )
    return dict(scales[scale])


def scale_overrides(sc: dict[str, Any]) -> list[str]:
    return [
        f"data.n_train={sc['n_train']}",
        f"data.n_val={sc['n_val']}",
        f"data.n_test={sc['n_test']}",
        f"trainer.max_epochs={sc['epochs']}",
        f"data.batch_size={sc['batch_size']}",
    ]


def train_jobs(study: dict[str, Any], scale: str, out_root: Path) -> list[dict[str, Any]]:
    """One job per (variant, seed): name, variant, seed, overrides (without the cache), run_dir."""
    sc = scale_of(study, scale)
    jobs = []
    for v in study.get("train") or []:
        for seed in v.get("seeds", sc["seeds"]) if scale != "tiny" else sc["seeds"]:
            name = f"{v['name']}_s{seed}"
            overrides = [
                *study.get("common", []),
                *v.get("overrides", []),
                *scale_overrides(sc),
                f"seed={seed}",
            ]
            jobs.append(
                {
                    "name": name,
                    "variant": v["name"],
                    "seed": int(seed),
                    "overrides": overrides,
                    "run_dir": out_root / study["name"] / "runs" / name,
                }
            )
    return jobs


def cache_dir_for(cfg: DictConfig, out_root: Path) -> tuple[Path, dict[str, Any], dict[str, int]]:
    cc = cache_config(physics_config(cfg), int(cfg.data.seed))
    counts = {s: int(cfg.data[f"n_{s}"]) for s in ("train", "val", "test")}
    return out_root / "cache" / config_hash({"c": cc, "n": counts}), cc, counts


def stage_data(jobs: list[dict[str, Any]], out_root: Path) -> None:
    """Render each distinct training data set once (shared by every variant and seed that uses it)."""
    from lensml.sim.simulator import build_simulator

    for job in jobs:
        cfg = compose_train_config(job["overrides"], job["run_dir"])
        cdir, cc, counts = cache_dir_for(cfg, out_root)
        job["cache_dir"] = cdir
        if (cdir / "manifest.json").exists() and json.loads((cdir / "manifest.json").read_text()).get(
            "complete"
        ):
            continue
        log.info("rendering training cache %s for %s", cdir, job["name"])
        with tqdm(total=sum(counts.values()), desc=f"cache {cdir.name}", unit="sample") as bar:
            generate_cache(build_simulator(physics_config(cfg)), cc, counts, cdir, progress=bar.update)


def stage_train(jobs: list[dict[str, Any]], out_root: Path) -> None:
    from lensml.train import run as train_run

    for job in jobs:
        rd = Path(job["run_dir"])
        if (rd / "metrics.json").exists():
            log.info("run %s done already", rd)
            continue
        cfg0 = compose_train_config(job["overrides"], rd)
        cdir, _, _ = cache_dir_for(cfg0, out_root)
        overrides = [
            *job["overrides"],
            "data=cache",
            f"data.cache_dir={cdir}",
            "data.num_workers=0",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
        ]
        rd.mkdir(parents=True, exist_ok=True)
        lock = rd / "train.lock"
        try:  # another process (shard) training the same run holds the lock
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            log.warning("run %s is being trained by another process (delete %s if it crashed)", rd, lock)
            continue
        try:
            write_json(rd / "overrides.json", overrides)
            log.info("training %s", job["name"])
            train_run(compose_train_config(overrides, rd))
        finally:
            lock.unlink(missing_ok=True)


def study_runs(study: dict[str, Any], scale: str, out_root: Path) -> dict[str, Run]:
    """name -> Run of this study's trained runs and of the ``runs_from`` study (which must be trained)."""
    runs: dict[str, Run] = {}
    ref = study.get("runs_from")
    if ref:
        other = load_study(ref["study"])
        wanted = set(ref.get("variants") or [v["name"] for v in other.get("train", [])])
        for job in train_jobs(other, scale, out_root):
            if job["variant"] in wanted:
                runs[job["name"]] = _load(job, ref["study"])
    for job in train_jobs(study, scale, out_root):
        runs[job["name"]] = _load(job, study["name"])
    return runs


def _load(job: dict[str, Any], study_name: str) -> Run:
    rd = Path(job["run_dir"])
    if not (rd / "metrics.json").exists():
        raise ConfigError(f"run {rd} is not trained; run `python -m lensml.study study={study_name}` first")
    run = load_run(rd)
    run.meta["variant"] = job["variant"]
    return run


def sources_dir(out_root: Path) -> Path:
    """Where the studies make the MaNGA source tensors of the shared folder (``{sources_dir}``)."""
    return out_root / "sources"


def eval_path(run: Run, cond_name: str, condition: list[str]) -> Path:
    return run.run_dir / "eval" / f"{cond_name}-{config_hash({'c': condition})}.npz"


def stage_evaluate(
    study: dict[str, Any], runs: dict[str, Run], n_test: int, shard: int, n_shards: int, out_root: Path
) -> None:
    """Score every run on every condition (test split rendered once per condition and data set)."""
    conds = list((study.get("evaluate") or {}).items())
    common = [o for o in study.get("common", []) if not o.startswith("logger")]
    if any("{sources_dir}" in o for _, cond in conds for o in cond):
        from lensml.analysis.near_real import prepare_sources

        prepare_sources(sources_dir(out_root))
    for k, (cname, cond) in enumerate(conds):
        if k % n_shards != shard:
            continue
        todo = [r for r in runs.values() if not eval_path(r, cname, cond).exists()]
        if not todo:
            continue
        log.info("evaluating %d runs on condition %s %s", len(todo), cname, cond)
        resolved = [o.replace("{sources_dir}", str(sources_dir(out_root).resolve())) for o in cond]
        preds = score_runs(todo, [*common, *resolved], n_test=n_test, progress=log.info)
        for run in todo:
            save_npz(eval_path(run, cname, cond), **preds[run.name])


def load_predictions(
    study: dict[str, Any], runs: dict[str, Run]
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """condition -> run name -> prediction arrays (from the evaluate stage)."""
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for cname, cond in (study.get("evaluate") or {}).items():
        out[cname] = {}
        for name, run in runs.items():
            with np.load(eval_path(run, cname, cond), allow_pickle=False) as z:
                out[cname][name] = {k: z[k] for k in z.files}
    return out


#: study blocks that need no training: block name -> ``module.function(spec, common, scale)`` -> summary block
NO_TRAINING_STUDIES: dict[str, str] = {
    "mask_leak": "lensml.analysis.leak_checks.run_leak_checks",
    "signal": "lensml.analysis.signal.run_signal",
    "forecast": "lensml.forecast.run_study",
}


def run_study(cfg: DictConfig) -> dict[str, Any] | None:
    """Run the stages of ``cfg.stage`` for ``cfg.study`` at ``cfg.scale``; return the summary if written."""
    t0 = time.time()
    study = load_study(str(cfg.study))
    out_root = Path(cfg.out_root)
    stages = ["data", "train", "evaluate", "summarise"] if cfg.stage == "all" else [str(cfg.stage)]
    jobs = train_jobs(study, cfg.scale, out_root)
    mine = [j for k, j in enumerate(jobs) if k % int(cfg.n_shards) == int(cfg.shard)]
    if "data" in stages:
        stage_data(jobs, out_root)
    if "train" in stages:
        stage_train(mine, out_root)
    summary_dir = Path(cfg.summary_dir)
    kind = next((k for k in NO_TRAINING_STUDIES if study.get(k)), None)
    if kind:  # a study without training runs: one function of its block -> the summary
        if "summarise" not in stages:
            return None
        module, func = NO_TRAINING_STUDIES[kind].rsplit(".", 1)
        run = getattr(importlib.import_module(module), func)
        summary = {**_header(study, cfg, {}), kind: run(study[kind], study.get("common", []), str(cfg.scale))}
        write_json(summary_dir / f"{study['name']}.json", summary)
        return summary
    if study.get("near_real"):
        from lensml.analysis import near_real

        if "summarise" not in stages:
            return None
        runs = study_runs(study, cfg.scale, out_root)
        result = near_real.run_near_real(
            study["near_real"], runs, sources_dir(out_root), summary_dir, scale=str(cfg.scale)
        )
        summary = {**_header(study, cfg, runs), "near_real": result}
        write_json(summary_dir / f"{study['name']}.json", summary)
        return summary
    runs = study_runs(study, cfg.scale, out_root) if {"evaluate", "summarise"} & set(stages) else {}
    n_test = int(scale_of(study, cfg.scale)["n_test"])
    if "evaluate" in stages:
        stage_evaluate(study, runs, n_test, int(cfg.shard), int(cfg.n_shards), out_root)
    if "summarise" not in stages:
        log.info("stages %s done in %.0f s", stages, time.time() - t0)
        return None
    preds = load_predictions(study, runs)
    rng = np.random.default_rng(int(cfg.bootstrap_seed))
    summary = {
        **_header(study, cfg, runs),
        **summ.summarise(study, runs, preds, n_boot=int(cfg.n_boot), rng=rng),
    }
    if study.get("examples"):
        save_npz(
            summary_dir / "examples.npz", **summ.examples(study, runs, preds, int(study["examples"]["n"]))
        )
    write_json(Path(cfg.summary_dir) / f"{study['name']}.json", summary)
    if cfg.get("save_predictions"):
        save_npz(
            Path(cfg.summary_dir) / f"{study['name']}_predictions.npz", **summ.compact_predictions(preds)
        )
    log.info("study %s: summary written to %s (%.0f s)", study["name"], cfg.summary_dir, time.time() - t0)
    return summary


def _header(study: dict[str, Any], cfg: DictConfig, runs: dict[str, Run]) -> dict[str, Any]:
    sc = scale_of(study, cfg.scale)
    return {
        "study": study["name"],
        "description": study.get("description", ""),
        "command": f"python -m lensml.study study={study['name']} scale={cfg.scale}",
        "scale_name": str(cfg.scale),
        "scale": sc,
        "common": study.get("common", []),
        "runs": {
            name: {
                "variant": r.meta.get("variant"),
                "seed": r.meta.get("seed"),
                "model": r.meta.get("model"),
                "channels": r.meta.get("channels"),
                "overrides": [
                    o for o in r.overrides if not o.startswith(("data.cache_dir", "trainer.enable"))
                ],
                "wall_time_s": r.meta.get("wall_time_s"),
                **_train_curve(r),
            }
            for name, r in runs.items()
        },
        "machine": f"{platform.machine()} {platform.system()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
    }


def _train_curve(run: Run) -> dict[str, Any]:
    m = json.loads((run.run_dir / "metrics.json").read_text())
    return {
        "epochs_trained": m.get("epochs_trained"),
        "val_auc": (m.get("val") or {}).get("auc"),
        "best_checkpoint": Path(m.get("best_checkpoint") or "").name,
        "val_auc_per_epoch": _val_curve(run.run_dir / "csv" / "metrics.csv"),
    }


def _val_curve(path: Path) -> list[float]:
    """Validation AUC after each epoch, from the CSV logger's file (empty if there is none)."""
    import csv

    if not path.exists():
        return []
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/auc")]
    return [round(float(r["val/auc"]), 4) for r in rows]


@hydra.main(version_base="1.3", config_path="../conf", config_name="study")
@clean_errors
def main(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    logging.getLogger("lensml").setLevel(logging.INFO)
    log.info("study config:\n%s", OmegaConf.to_yaml(cfg))
    run_study(cfg)


if __name__ == "__main__":
    main()

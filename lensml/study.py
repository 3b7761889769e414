"""Run a study of ``experiments/study/``: ``python -m lensml.study study=headline [scale=tiny|cpu|full]``.

The study and the scale preset are Hydra config groups (``lensml.study_config``): ``-m study=a,b`` runs
several, any key can be overridden (``scale.epochs=2``, ``study.common=[...]``). A study file
(``docs/science.md``) holds:

- ``name`` (its file name) and ``description``;
- ``scales``: optional ``{<preset>: {epochs: 4, ...}}``, the study's own run sizes where they differ from the
  preset's (``experiments/scale/<preset>.yaml``: ``n_train, n_val, n_test, epochs, batch_size, seeds``);
- ``common``: ``lensml.train`` overrides of every run (and of ``runs_from``'s evaluations);
- ``train``: variants ``{name, overrides[, seeds]}``, each trained once per seed (``seed=s``; ``data.seed``
  stays fixed in ``common``, so all runs of a study see the same samples and the test sets are identical);
- ``runs_from``: ``{study: other, variants: [...]}`` re-uses another study's trained runs (same scale);
- ``evaluate``: test conditions ``name: [overrides]`` scored on every run (``lensml.analysis.scoring``);
- ``compare``: pairs ``[a, b]`` of variants: paired bootstrap of b - a on every condition;
- ``sensitivity`` / ``near_real`` / ``fit_detect``: extra analyses (``lensml.analysis.sensitivity``,
  ``.near_real``, ``.fit_compare``).

Stages (``stage=``): ``data`` (training caches), ``train``, ``evaluate``, ``fit`` (a ``fit_detect`` block's
fits, ``lensml.analysis.fit_compare``), ``summarise`` or ``all``.
``shard=k n_shards=n`` splits the train and evaluate jobs over processes. Every stage resumes: a finished run
(``metrics.json``) whose training config has the hash the study gives it now (``lensml.run_identity``) or an
evaluation (``<run>/eval/<condition>-<hash>.npz``) is not redone; a finished run with another config is an
error naming it (``on_mismatch=rerun`` retrains it, ``on_mismatch=reuse`` keeps it). The summary is
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

from lensml import run_identity
from lensml.analysis import summarise as summ
from lensml.analysis.scoring import Run, compose_train_config, load_run, score_runs
from lensml.atomic_io import save_npz, write_json
from lensml.cli import clean_errors
from lensml.data.cache import cache_config, config_hash, generate_cache, physics_config
from lensml.errors import ConfigError
from lensml.study_config import EXPERIMENTS_DIR, load_study, study_of  # noqa: F401  (EXPERIMENTS_DIR: API)

log = logging.getLogger(__name__)

#: what a study does with a finished run whose training config differs from the one it would train now
ON_MISMATCH = ("error", "rerun", "reuse")


def scale_overrides(sc: dict[str, Any]) -> list[str]:
    """``lensml.train`` overrides of the run sizes ``sc`` (a study's ``scale``) and the scale's overrides."""
    return [
        f"data.n_train={sc['n_train']}",
        f"data.n_val={sc['n_val']}",
        f"data.n_test={sc['n_test']}",
        f"trainer.max_epochs={sc['epochs']}",
        f"data.batch_size={sc['batch_size']}",
        *(sc.get("overrides") or []),
    ]


def train_jobs(study: dict[str, Any], out_root: Path) -> list[dict[str, Any]]:
    """One job per (variant, seed) at the study's scale: name, variant, seed, overrides (without the cache),
    run_dir. At scale ``tiny`` a variant's own ``seeds`` are ignored (the scale's seeds only)."""
    sc = study["scale"]
    jobs = []
    for v in study.get("train") or []:
        for seed in v.get("seeds", sc["seeds"]) if sc["name"] != "tiny" else sc["seeds"]:
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
                    "scale": sc["name"],
                }
            )
    return jobs


def cache_dir_for(cfg: DictConfig, out_root: Path) -> tuple[Path, dict[str, Any], dict[str, int]]:
    cc = cache_config(physics_config(cfg), int(cfg.data.seed))
    counts = {s: int(cfg.data[f"n_{s}"]) for s in ("train", "val", "test")}
    return out_root / "cache" / config_hash({"c": cc, "n": counts}), cc, counts


def streams(cfg: DictConfig) -> bool:
    """True if the run draws fresh training samples (``data.stream``; needed by ``data.curriculum``): it is
    trained on the fly (a cache would only be cycled), the other runs on their rendered training cache."""
    return bool(cfg.data.get("stream"))


def stage_data(jobs: list[dict[str, Any]], out_root: Path) -> None:
    """Render each distinct training data set once (shared by every variant and seed that uses it); streaming
    runs (``streams``) render their samples as they train."""
    from lensml.sim.simulator import build_simulator

    for job in jobs:
        cfg = compose_train_config(job["overrides"], job["run_dir"])
        if streams(cfg):
            continue
        cdir, cc, counts = cache_dir_for(cfg, out_root)
        job["cache_dir"] = cdir
        if (cdir / "manifest.json").exists() and json.loads((cdir / "manifest.json").read_text()).get(
            "complete"
        ):
            continue
        log.info("rendering training cache %s for %s", cdir, job["name"])
        with tqdm(total=sum(counts.values()), desc=f"cache {cdir.name}", unit="sample") as bar:
            generate_cache(build_simulator(physics_config(cfg)), cc, counts, cdir, progress=bar.update)


def training_overrides(job: dict[str, Any], out_root: Path) -> list[str]:
    """The job's overrides as it is trained: on its rendered training cache (on the fly if it ``streams``),
    without progress output."""
    cfg = compose_train_config(job["overrides"], job["run_dir"])
    if streams(cfg):
        data = ["data=onthefly"]
    else:
        data = ["data=cache", f"data.cache_dir={cache_dir_for(cfg, out_root)[0]}"]
    return [
        *job["overrides"],
        *data,
        "data.num_workers=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


def reusable(job: dict[str, Any], cfg: DictConfig, on_mismatch: str, study_name: str) -> bool:
    """True if the job's run dir holds a finished run trained with ``cfg``'s identity (or ``on_mismatch`` is
    ``reuse``); False if it is to be trained (not finished; or ``rerun``: the old run is moved aside first).
    A finished run with another config and ``on_mismatch=error`` raises ``ConfigError`` naming it."""
    rd = Path(job["run_dir"])
    if not (rd / "metrics.json").exists():
        return False
    diff = run_identity.differences(rd, cfg)
    if diff == []:
        return True
    what = "has no record of its config" if diff is None else f"was trained with other {', '.join(diff[:4])}"
    if on_mismatch == "reuse":
        log.warning("run %s %s; re-used (on_mismatch=reuse)", rd, what)
        return True
    if on_mismatch == "rerun":
        stale = rd.with_name(f"{rd.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        log.warning("run %s %s; moved to %s and trained again (on_mismatch=rerun)", rd, what, stale)
        os.replace(rd, stale)
        return False
    cmd = f"python -m lensml.study study={study_name} scale={job['scale']}"
    raise ConfigError(
        f"run {rd} {what} than `{cmd}` gives it now: retrain it with `{cmd} on_mismatch=rerun` (the old run "
        "is kept as <run>.stale-<time>), delete the run dir, or keep it with on_mismatch=reuse"
    )


def stage_train(
    jobs: list[dict[str, Any]], out_root: Path, study_name: str, on_mismatch: str = "error"
) -> None:
    from lensml.train import run as train_run

    for job in jobs:
        rd = Path(job["run_dir"])
        overrides = training_overrides(job, out_root)
        cfg = compose_train_config(overrides, rd)
        if reusable(job, cfg, on_mismatch, study_name):
            log.info("run %s done already", rd)
            continue
        rd.mkdir(parents=True, exist_ok=True)
        lock = rd / "train.lock"
        try:  # another process (shard) training the same run holds the lock
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            log.warning("run %s is being trained by another process (delete %s if it crashed)", rd, lock)
            continue
        try:
            write_json(rd / "overrides.json", overrides)
            run_identity.record(rd, cfg)
            log.info("training %s", job["name"])
            train_run(cfg)
        finally:
            lock.unlink(missing_ok=True)


def study_runs(study: dict[str, Any], out_root: Path, on_mismatch: str = "error") -> dict[str, Run]:
    """name -> Run of this study's trained runs and of the ``runs_from`` study (which must be trained, at the
    same scale preset), each checked to hold the config the study gives it (``reusable``)."""
    runs: dict[str, Run] = {}
    ref = study.get("runs_from")
    if ref:
        other = load_study(ref["study"], study["scale"]["name"])
        wanted = set(ref.get("variants") or [v["name"] for v in other.get("train", [])])
        for job in train_jobs(other, out_root):
            if job["variant"] in wanted:
                runs[job["name"]] = _load(job, ref["study"], out_root, on_mismatch)
    for job in train_jobs(study, out_root):
        runs[job["name"]] = _load(job, study["name"], out_root, on_mismatch)
    return runs


def _load(job: dict[str, Any], study_name: str, out_root: Path, on_mismatch: str) -> Run:
    rd = Path(job["run_dir"])
    train_cmd = f"python -m lensml.study study={study_name} scale={job['scale']}"
    if not (rd / "metrics.json").exists():
        raise ConfigError(f"run {rd} is not trained; run `{train_cmd}` first")
    cfg = compose_train_config(training_overrides(job, out_root), rd)
    # a run with another config is retrained by its own study's train stage (on_mismatch=rerun), not here
    reusable(job, cfg, "reuse" if on_mismatch == "reuse" else "error", study_name)
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
        todo = [r for r in runs.values() if not _evaluated(eval_path(r, cname, cond), n_test)]
        if not todo:
            continue
        log.info("evaluating %d runs on condition %s %s", len(todo), cname, cond)
        resolved = [o.replace("{sources_dir}", str(sources_dir(out_root).resolve())) for o in cond]
        preds = score_runs(todo, [*common, *resolved], n_test=n_test, progress=log.info)
        for run in todo:
            save_npz(eval_path(run, cname, cond), **preds[run.name])


def _evaluated(path: Path, n_test: int) -> bool:
    """True if ``path`` holds an evaluation of ``n_test`` samples; an error if it holds another number (a
    study with the same condition name and overrides at another ``n_test``: never overwritten)."""
    if not path.exists():
        return False
    with np.load(path, allow_pickle=False) as z:
        n = int(z["probs"].shape[0])
    if n != n_test:
        raise ConfigError(
            f"{path} holds {n} test samples, this study asks n_test={n_test} (another study evaluated the "
            "same condition under the same name): give the condition another name in the study file"
        )
    return True


def load_predictions(
    study: dict[str, Any], runs: dict[str, Run]
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """condition -> run name -> prediction arrays (from the evaluate stage, ``n_test`` samples each)."""
    n_test = int(study["scale"]["n_test"])
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for cname, cond in (study.get("evaluate") or {}).items():
        out[cname] = {}
        for name, run in runs.items():
            path = eval_path(run, cname, cond)
            _evaluated(path, n_test)
            with np.load(path, allow_pickle=False) as z:
                out[cname][name] = {k: z[k] for k in z.files}
    return out


#: study blocks that need no training: block name -> ``module.function(spec, common, scale)`` -> summary block
NO_TRAINING_STUDIES: dict[str, str] = {
    "mask_leak": "lensml.analysis.leak_checks.run_leak_checks",
    "signal": "lensml.analysis.signal.run_signal",
    "forecast": "lensml.forecast.run_study",
}
#: of those, the ones kept per part under ``out_root/<study>/<block>/`` (resumable; ``stage=evaluate`` with
#: ``shard``/``n_shards`` computes one shard of the parts):
#: ``run(spec, common, scale, work_dir, shard, n_shards, summarise)``
SHARDED_STUDIES: frozenset[str] = frozenset({"forecast"})


def run_study(cfg: DictConfig) -> dict[str, Any] | None:
    """Run the stages of ``cfg.stage`` for the composed ``cfg.study`` at ``cfg.scale``; return the summary if
    written."""
    t0 = time.time()
    study = study_of(cfg)
    scale = str(study["scale"]["name"])
    on_mismatch = str(cfg.get("on_mismatch", "error"))
    if on_mismatch not in ON_MISMATCH:
        raise ConfigError(f"on_mismatch={on_mismatch!r}: use one of {list(ON_MISMATCH)}")
    out_root = Path(cfg.out_root)
    stages = ["data", "train", "evaluate", "fit", "summarise"] if cfg.stage == "all" else [str(cfg.stage)]
    jobs = train_jobs(study, out_root)
    mine = [j for k, j in enumerate(jobs) if k % int(cfg.n_shards) == int(cfg.shard)]
    if "data" in stages:
        stage_data(jobs, out_root)
    if "train" in stages:
        stage_train(mine, out_root, study["name"], on_mismatch)
    summary_dir = Path(cfg.summary_dir)
    kind = next((k for k in NO_TRAINING_STUDIES if study.get(k)), None)
    if kind:  # a study without training runs: one function of its block -> the summary
        module, func = NO_TRAINING_STUDIES[kind].rsplit(".", 1)
        run = getattr(importlib.import_module(module), func)
        args = (study[kind], study.get("common", []), scale)
        if kind in SHARDED_STUDIES:  # kept per part under out_root: resumable; stage=evaluate runs a shard
            opts = {"work_dir": out_root / study["name"] / kind, "shard": int(cfg.shard),
                    "n_shards": int(cfg.n_shards)}
            if "evaluate" in stages:
                run(*args, **opts, summarise=False)
            args = (*args, opts["work_dir"])
        if "summarise" not in stages:
            return None
        summary = {**_header(study, {}, trains=False), kind: run(*args)}
        write_json(summary_dir / f"{study['name']}.json", summary)
        return summary
    if study.get("near_real"):
        from lensml.analysis import near_real

        if "summarise" not in stages:
            return None
        runs = study_runs(study, out_root, on_mismatch)
        result = near_real.run_near_real(
            study["near_real"], runs, sources_dir(out_root), summary_dir, scale=scale, prefix=study["name"]
        )
        summary = {**_header(study, runs), "near_real": result}
        write_json(summary_dir / f"{study['name']}.json", summary)
        return summary
    runs = study_runs(study, out_root, on_mismatch) if {"evaluate", "summarise"} & set(stages) else {}
    n_test = int(study["scale"]["n_test"])
    if "evaluate" in stages:
        stage_evaluate(study, runs, n_test, int(cfg.shard), int(cfg.n_shards), out_root)
    if "fit" in stages and study.get("fit_detect"):
        from lensml.analysis.fit_compare import run_fits_for

        run_fits_for(study, out_root, int(cfg.shard), int(cfg.n_shards))
    if "summarise" not in stages:
        log.info("stages %s done in %.0f s", stages, time.time() - t0)
        return None
    preds = load_predictions(study, runs)
    rng = np.random.default_rng(int(cfg.bootstrap_seed))
    summary = {
        **_header(study, runs),
        **summ.summarise(study, runs, preds, n_boot=int(cfg.n_boot), rng=rng),
    }
    if study.get("fit_detect"):
        from lensml.analysis.fit_compare import summarise_fits

        summary["fit_detect"] = summarise_fits(
            study, runs, preds, out_root, summ.by_variant, int(cfg.n_boot), rng
        )
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


def _header(study: dict[str, Any], runs: dict[str, Run], trains: bool = True) -> dict[str, Any]:
    """The summary's header; ``scale``: the run sizes (empty for a study without networks: ``trains``)."""
    sc = study["scale"]
    sizes = {k: v for k, v in sc.items() if k != "name" and not (k == "overrides" and not v)}
    return {
        "study": study["name"],
        "description": study.get("description", ""),
        "command": f"python -m lensml.study study={study['name']} scale={sc['name']}",
        "scale_name": str(sc["name"]),
        "scale": sizes if trains else {},
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
        **({} if (hn := run_identity.head_norm(run.run_dir)) is None else {"head_norm": hn}),
        **_val_curve(run.run_dir / "csv" / "metrics.csv"),
    }


def _val_curve(path: Path) -> dict[str, list[float]]:
    """Validation AUC after each epoch (``val_auc_per_epoch``) and, where logged, the training samples seen
    by then (``samples_seen_per_epoch``: the learning curve), from the CSV logger's file (empty without one).
    With samples seen logged, the final re-validation of the selected checkpoint (no new samples) is
    dropped."""
    import csv

    if not path.exists():
        return {"val_auc_per_epoch": []}
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/auc")]
    if rows and all(r.get("val/samples_seen") for r in rows):
        seen = [float(r["val/samples_seen"]) for r in rows]
        rows = [r for k, r in enumerate(rows) if k == 0 or seen[k] > max(seen[:k])]
    out: dict[str, list[float]] = {"val_auc_per_epoch": [round(float(r["val/auc"]), 4) for r in rows]}
    if rows and all(r.get("val/samples_seen") for r in rows):
        out["samples_seen_per_epoch"] = [int(float(r["val/samples_seen"])) for r in rows]
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="study")
@clean_errors
def main(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    logging.getLogger("lensml").setLevel(logging.INFO)
    log.info("study config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
    run_study(cfg)


if __name__ == "__main__":
    main()

"""``python -m lensml.forecast [overrides]``: the linearised detection forecast (issue 14; docs/science.md).

Per mass bin and draw: the significance sqrt(Delta chi^2) of the subhalo in the flux and flux+velocity data
sets (each velocity noise floor), after marginalising each configured nuisance set
(``lensml.inference.forecast_draw``); optional nonlinear refits of a subset (``lensml.inference.refit``) and
the unknown-position case (``lensml.inference.position_scan``). Writes ``forecast.json``, ``forecast.md``
and ``forecast.png`` to ``out_dir``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from lensml.atomic_io import save_figure, write_json, write_text
from lensml.cli import clean_errors
from lensml.data.cache import config_hash
from lensml.digest import source_digest
from lensml.errors import ConfigError
from lensml.inference import physics
from lensml.inference.forecast_draw import (
    Settings,
    dataset_key,
    draw_significance,
    settings_from,
    smooth_model,
)
from lensml.inference.summary import figure, markdown, summarise

log = logging.getLogger(__name__)


def bin_simulators(cfg: DictConfig) -> list[physics.LensSimulator]:
    """One simulator per mass bin (``subhalo.mass_bin`` set, every sample with its subhalo)."""
    bins = list(cfg.forecast.mass_bins)
    if not bins or any(not isinstance(b, int | float) or b <= 0 for b in bins):
        raise ConfigError(f"forecast.mass_bins={bins} must be a non-empty list of masses > 0 (M_sun).")
    sims = []
    for mb in bins:
        c = copy.deepcopy(cfg)
        OmegaConf.update(c, "subhalo.mass_bin", float(mb))
        OmegaConf.update(c, "subhalo.p_present", 1.0)
        sims.append(physics.build_simulator(c))
    return sims


def _whitening(sim, draws, i, model, floor, with_velocity):  # noqa: ANN001, ANN202
    """Noise sigmas of draw i and (f, v) -> whitened perturbation vector (velocity: the smooth mask)."""
    f0, v0 = model["f0"], model["v0"]
    peak = float(f0.max())
    s_f, s_v = physics.noise_sigmas(sim, f0, draws, i, floor)
    s_f = np.maximum(s_f, 1e-12 * peak)
    s_v = np.maximum(s_v, 1e-6)
    mask0 = f0 > model["scene"].mask_frac_of_peak * peak

    def whiten(f1: np.ndarray, v1: np.ndarray) -> np.ndarray:
        parts = [((f1 - f0) / s_f).ravel()]
        if with_velocity:
            parts.append(((v1 - v0) / s_v)[mask0])
        return np.concatenate(parts)

    return s_f, s_v, mask0, whiten


def run_refits(cfg, sims, draws, st, sig) -> dict[str, Any]:  # noqa: ANN001
    """Nonlinear refits of the first ``forecast.refit.n_draws`` draws of each bin (ratio to linearised)."""
    import torch

    from lensml.inference.refit import refit_significance
    from lensml.inference.renderer import DTYPE, nuisance_names, render

    rc = cfg.forecast.refit
    n = min(int(rc.n_draws), int(cfg.forecast.n_draws))
    floor = float(rc.floor_kms)
    ratio: dict[str, list] = {}
    rows = []
    for i in tqdm(range(n), desc="refits"):
        model = smooth_model(sims[0], draws[0], i, st)
        scene, theta = model["scene"], model["theta"]
        s_f, s_v, mask0, _ = _whitening(sims[0], draws[0], i, model, floor, True)
        for b, (sim, dr) in enumerate(zip(sims, draws)):
            if rc.get("bins") is not None and b not in list(rc.bins):
                continue
            kw = physics.subhalo_kwargs_at(
                sim, dr, i, float(dr.mass_msun[i]), float(dr.sub_x[i]), float(dr.sub_y[i])
            )
            th = theta.copy()
            for k, v in kw.items():
                th[scene.names.index(f"sub.{k}")] = v
            with torch.no_grad():
                f1, v1 = (t.numpy() for t in render(scene, torch.as_tensor(th, dtype=DTYPE)))
            vmask = mask0 & (f1 > scene.mask_frac_of_peak * f1.max())
            for marg in rc.marginalise:
                free = nuisance_names(scene, st.marginalisations[marg])
                for ds, vel in (("flux", False), (dataset_key(floor), True)):
                    r = refit_significance(
                        scene,
                        theta,
                        free,
                        f1,
                        v1 if vel else None,
                        s_f,
                        s_v if vel else None,
                        vmask if vel else None,
                        int(rc.max_nfev),
                    )
                    lin = float(sig[ds][marg][i, b])
                    rows.append({"draw": i, "bin": b, "dataset": ds, "marginalise": marg, "linear": lin, **r})
    for key in {(r["dataset"], r["marginalise"]) for r in rows}:
        per_bin = []
        for b in range(len(sims)):
            q = [
                r["nonlinear_sigma"] / max(r["linear"], 1e-300)
                for r in rows
                if (r["dataset"], r["marginalise"]) == key and r["bin"] == b
            ]
            per_bin.append(np.quantile(q, [0.1, 0.5, 0.9]).tolist() if q else [np.nan] * 3)
        ratio["|".join(key)] = per_bin
    return {"n_draws": n, "ratio": ratio, "rows": rows}


def run_unknown_position(cfg, sims, draws, st) -> dict[str, Any]:  # noqa: ANN001
    """Local and global significance with the subhalo position unknown (``position_scan``)."""
    from lensml.inference.forecast_draw import _prior, columns
    from lensml.inference.position_scan import scan

    uc = cfg.forecast.unknown_position
    n = min(int(uc.n_draws), int(cfg.forecast.n_draws))
    marg = str(uc.marginalise)
    if marg not in st.marginalisations:
        raise ConfigError(f"forecast.unknown_position.marginalise={marg!r} is not in forecast.marginalise.")
    floor = float(uc.floor_kms)
    rng = np.random.default_rng(int(cfg.seed))
    acc: dict[str, list[list[dict]]] = {"flux": [[] for _ in sims], dataset_key(floor): [[] for _ in sims]}
    n_pos = int(uc.n_radii) * int(uc.n_angles)
    for i in tqdm(range(n), desc="unknown position"):
        model = smooth_model(sims[0], draws[0], i, st)
        idx = columns(model["labels"], model["scene"], st.marginalisations[marg])
        prior = _prior(model, model["jf"].shape[1])[np.ix_(idx, idx)] if model["prior_blocks"] else None
        for ds, vel in (("flux", False), (dataset_key(floor), True)):
            s_f, s_v, mask0, whiten = _whitening(sims[0], draws[0], i, model, floor, vel)
            g = [model["jf"][:, idx] / s_f.reshape(-1, 1)]
            if vel:
                g.append(model["jv"][mask0.ravel()][:, idx] / s_v[mask0][:, None])
            g = np.vstack(g)
            for b, (sim, dr) in enumerate(zip(sims, draws)):
                import torch

                from lensml.inference.renderer import DTYPE, render

                kw = physics.subhalo_kwargs_at(
                    sim, dr, i, float(dr.mass_msun[i]), float(dr.sub_x[i]), float(dr.sub_y[i])
                )
                th = model["theta"].copy()
                for k, v in kw.items():
                    th[model["scene"].names.index(f"sub.{k}")] = v
                with torch.no_grad():
                    f1, v1 = (t.numpy() for t in render(model["scene"], torch.as_tensor(th, dtype=DTYPE)))
                z_true = whiten(f1, v1)
                acc[ds][b].append(
                    scan(
                        sim,
                        dr,
                        i,
                        model,
                        g,
                        prior,
                        whiten,
                        z_true,
                        int(uc.n_radii),
                        int(uc.n_angles),
                        int(uc.n_null),
                        rng,
                    )
                )
    results = {
        ds: [
            {
                "local": float(np.median([r["local_sigma"] for r in rows])),
                "global": float(np.median([r["global_sigma"] for r in rows])),
                "n_eff": float(np.median([r["n_eff"] for r in rows])),
            }
            for rows in per_bin
        ]
        for ds, per_bin in acc.items()
    }
    return {"n_draws": n, "n_positions": n_pos, "marginalise": marg, "results": results, "rows": acc}


def run_forecast(cfg: DictConfig) -> dict[str, Any]:
    """Compute the forecast of ``cfg`` (see the module docstring); returns the JSON-able result."""
    t_start = time.perf_counter()
    load = os.getloadavg()[0]
    fc = cfg.forecast
    st: Settings = settings_from(OmegaConf.to_container(fc, resolve=True))
    n = int(fc.n_draws)
    if n < 1:
        raise ConfigError(f"forecast.n_draws={n} must be >= 1.")
    sims = bin_simulators(cfg)
    draws = [s.draw_batch(int(cfg.seed), st.split, np.arange(n)) for s in sims]
    sig = {ds: {m: np.zeros((n, len(sims))) for m in st.marginalisations} for ds in st.datasets}
    t0 = time.perf_counter()
    for i in tqdm(range(n), desc="forecast"):
        res = draw_significance(sims, draws, i, st)
        for ds, per in res.items():
            for m, v in per.items():
                sig[ds][m][i] = v
    t_draws = time.perf_counter() - t0
    masses = np.stack([d.mass_msun for d in draws], axis=1)
    result: dict[str, Any] = {
        "version": 1,
        "n_draws": n,
        "mass_bins": [float(b) for b in fc.mass_bins],
        "sigma_v_floors_kms": st.floors_kms,
        "marginalise": st.marginalisations,
        "summary": summarise(sig, masses, float(fc.threshold_sigma), int(fc.n_bootstrap), int(cfg.seed)),
        "per_draw": {ds: {m: v.tolist() for m, v in per.items()} for ds, per in sig.items()},
        "mass_msun": masses.tolist(),
    }
    t1 = time.perf_counter()
    if int(fc.refit.n_draws) > 0:
        result["refit"] = run_refits(cfg, sims, draws, st, sig)
    t2 = time.perf_counter()
    if int(fc.unknown_position.n_draws) > 0:
        result["unknown_position"] = run_unknown_position(cfg, sims, draws, st)
    t3 = time.perf_counter()
    import torch

    result["timing"] = {
        "total_s": t3 - t_start,
        "draws_s": t_draws,
        "per_draw_s": t_draws / n,
        "refit_s": t2 - t1,
        "unknown_s": t3 - t2,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_start": load,
    }
    return result


def write_outputs(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """forecast.json, forecast.md, forecast.png in ``out_dir`` (atomic writes)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": write_json(out / "forecast.json", result),
        "md": write_text(out / "forecast.md", markdown(result)),
    }
    fig = figure(result)
    paths["png"] = save_figure(out / "forecast.png", fig, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


#: Override prefixes a study's ``common`` list may pass on to the forecast (the physics groups).
PHYSICS_PREFIXES: tuple[str, ...] = ("source", "lens", "subhalo", "noise", "instrument", "sim")


def compose_forecast_config(overrides: list[str], out_dir: str | Path = ".") -> DictConfig:
    """``conf/forecast.yaml`` composed with ``overrides`` (no Hydra runtime needed)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lensml.paths import CONF_DIR

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("forecast", overrides=[*overrides, f"out_dir={out_dir}"])


def with_scale(spec: Mapping[str, Any], scale: str) -> dict[str, Any]:
    """``spec`` with its ``per_scale[scale]`` settings merged in (dicts key by key, the rest replaced)."""
    out = {k: v for k, v in spec.items() if k != "per_scale"}
    for key, value in (spec.get("per_scale") or {}).get(scale, {}).items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = {**out[key], **value} if both else value
    return out


SUMMARY_CODE = Path(__file__).parent / "inference" / "summary.py"


def code_digest() -> str:
    """A hash of the code a forecast result depends on (``lensml/forecast.py``, ``lensml/inference``,
    ``lensml/sim``, ``lensml/sources``, ``lensml/numerics``): a kept result of other code is not reused. The
    summary code (``lensml/inference/summary.py``) is left out: a kept result keeps its per-draw
    significances and is summarised again when read."""
    root = Path(__file__).parent
    files = [root / "forecast.py"]
    for sub in ("inference", "sim", "sources", "numerics"):
        files += sorted(f for f in (root / sub).rglob("*.py") if f != SUMMARY_CODE)
    return source_digest(tuple(files))


def _cached_result(cfg: DictConfig, path: Path | None, compute: bool) -> dict[str, Any] | None:
    """The forecast of ``cfg``: from ``path`` when it holds one for the same config and code (hash), else
    computed when ``compute`` (and written to ``path`` atomically), else None."""
    key = config_hash({"config": OmegaConf.to_container(cfg, resolve=True), "code": code_digest()})
    if path is not None and path.exists():
        try:
            cached = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            cached = {}
        if cached.get("config_hash") == key:
            log.info("forecast: %s reused (same config and code)", path)
            result = cached["result"]
            if cached.get("per_draw") is not None:
                result["summary"] = _summary(cfg, cached["per_draw"], result["mass_msun"])
            return result
        log.warning("forecast: %s was computed for another config or code%s", path,
                    "; recomputing it" if compute else "; not used")
    if not compute:
        return None
    result = run_forecast(cfg)
    per_draw = result.pop("per_draw", None)
    result.get("refit", {}).pop("rows", None)
    result.get("unknown_position", {}).pop("rows", None)
    if path is not None:
        write_json(path, {"config_hash": key, "result": result, "per_draw": per_draw})
    return result


def _summary(cfg: DictConfig, per_draw: Mapping[str, Mapping[str, list]], masses: list) -> dict[str, Any]:
    """The summary of kept per-draw significances (``per_draw[dataset][marginalisation]``, (draws, bins))."""
    sig = {ds: {m: np.asarray(v, dtype=float) for m, v in per.items()} for ds, per in per_draw.items()}
    fc = cfg.forecast
    return summarise(sig, np.asarray(masses, dtype=float), float(fc.threshold_sigma), int(fc.n_bootstrap),
                     int(cfg.seed))


def run_study(
    spec: dict[str, Any], common: list[str], scale: str, work_dir: Path | None = None, shard: int = 0,
    n_shards: int = 1, summarise: bool = True,
) -> dict[str, Any] | None:
    """The ``forecast`` study (for ``lensml.study``, as ``run_signal``). ``spec``: ``noise`` (noise group
    names), ``n`` / ``n_tiny`` draws per bin, ``per_scale`` (per study scale, settings merged over the rest),
    and any ``forecast.*`` key (``mass_bins``,
    ``sigma_v_floors_kms``, ``marginalise``, ``refit``, ``unknown_position``, ...); ``common``: the study's
    overrides, of which the physics groups' are applied. Returns per noise group: summary, checks, timing.

    Resumable and shardable by noise group: with ``work_dir`` each group's result is kept in
    ``work_dir/<noise>.json`` with its config and code hash and reused; with ``summarise=False`` only the
    groups ``k % n_shards == shard`` are computed (and kept) and None is returned; with ``summarise`` the kept
    groups are read and the summary block returned; a group not kept is computed here only without
    ``work_dir`` (else ``ConfigError`` naming it: run its shard, ``stage=evaluate``, first).
    """
    tiny = scale == "tiny"
    spec = with_scale(spec, scale)
    n = int(spec.get("n_tiny" if tiny else "n", 4 if tiny else 256))
    keep = [o for o in common if o.lstrip("+~").split(".")[0].split("=")[0] in PHYSICS_PREFIXES]
    out: dict[str, Any] = {"version": 1, "n_per_bin": n, "noise": {}}
    missing: list[str] = []
    for k, noise in enumerate(spec.get("noise", ["nominal"])):
        if not summarise and k % n_shards != shard:
            continue  # another shard's group
        cfg = compose_forecast_config([*keep, f"noise={noise}"])
        for key, value in spec.items():
            if key not in ("noise", "n", "n_tiny", "per_scale"):
                # sub-settings (refit, unknown_position, pixelated) merge; marginalise replaces the sets
                OmegaConf.update(cfg, f"forecast.{key}", value, merge=key != "marginalise")
        OmegaConf.update(cfg, "forecast.n_draws", n)
        if tiny:
            OmegaConf.update(cfg, "forecast.refit.n_draws", min(int(cfg.forecast.refit.n_draws), 1))
            OmegaConf.update(
                cfg, "forecast.unknown_position.n_draws", min(int(cfg.forecast.unknown_position.n_draws), 1)
            )
        path = None if work_dir is None else Path(work_dir) / f"{noise}.json"
        result = _cached_result(cfg, path, compute=path is None or not summarise)
        if result is not None:
            out["noise"][noise] = result
        elif summarise:
            missing.append(noise)
    if missing:
        raise ConfigError(
            f"forecast noise group(s) {missing} not computed for this config and code in {work_dir}; run "
            "stage=evaluate (with its shard=k n_shards=n) first, or stage=all"
        )
    return out if summarise else None


@hydra.main(version_base="1.3", config_path="../conf", config_name="forecast")
@clean_errors
def main(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):
        import torch

        torch.set_num_threads(int(cfg.num_threads))
    result = run_forecast(cfg)
    paths = write_outputs(result, cfg.out_dir)
    print(markdown(result))
    print(f"forecast written to {paths['md'].parent}")


if __name__ == "__main__":
    main()

"""Pre-generate the dataset cache: ``python -m lensml.make_dataset [overrides]``.

Renders ``data.n_train / n_val / n_test`` samples with the composed physics config and ``data.seed`` into
``data.cache_dir`` (shards + ``manifest.json``, see ``lensml.data.cache``), with a progress bar. Re-running
after a crash resumes: finished shards are kept, bad ones re-rendered, temp files of killed writers swept.
Smaller sizes than the cache holds keep the larger cache (runs read its first samples); ``overwrite=true``
rebuilds it at exactly the requested sizes. Train on it with the same overrides plus ``data=cache``.
"""

from __future__ import annotations

import logging
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from lensml.cli import clean_errors
from lensml.config_checks import _int
from lensml.data.cache import RUNTIME_SIM_KEYS, cache_config, generate_cache, physics_config
from lensml.sim.simulator import PHYSICS_GROUPS

log = logging.getLogger(__name__)


def make_dataset(cfg: DictConfig, progress_bar: bool = True) -> dict[str, Any]:
    """Generate (or resume) the cache described by ``cfg``; return its manifest."""
    from lensml.sim import simulator as sim_mod

    counts = {s: _int(cfg, f"data.n_{s}", 0) for s in ("train", "val", "test")}
    seed = _int(cfg, "data.seed", 0)
    shard_size = _int(cfg, "shard_size", 1)
    render_batch = _int(cfg, "render_batch", 1)
    sim_cfg = physics_config(cfg)
    simulator = sim_mod.build_simulator(sim_cfg)
    total = sum(counts.values())
    with tqdm(total=total, desc="make_dataset", unit="sample", disable=not progress_bar) as bar:
        manifest = generate_cache(
            simulator, cache_config(sim_cfg, seed), counts, cfg.data.cache_dir,
            shard_size=shard_size, render_batch=render_batch, overwrite=bool(cfg.overwrite),
            progress=bar.update, on_total=lambda n: setattr(bar, "total", n),
        )
    log.info("cache %s complete: %s (hash %s)", cfg.data.cache_dir, manifest["counts"],
             manifest["config_hash"])
    return manifest


#: keys besides the physics groups that fix which samples a cache holds
CACHE_KEYS: tuple[str, ...] = ("seed", "data.seed", "data.n_train", "data.n_val", "data.n_test")
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def make_dataset_command(cfg: DictConfig, overrides: Sequence[str]) -> str:
    """The ``make_dataset`` command that (re-)renders the cache a run of ``cfg`` (``overrides``) reads.

    The run's own physics, seed and size overrides, plus ``key=value`` for every physics or size key whose
    resolved value still differs from what ``make_dataset`` composes with them: keys set by an
    ``experiment=`` (which ``make_dataset`` cannot load: it overrides model, trainer, ... groups) or by a
    group choice. Arguments are shell-quoted where needed.
    """
    def key(o: str) -> str:
        return o.lstrip("+~").split("=", 1)[0]

    args = [o for o in overrides if key(o).split(".", 1)[0] in PHYSICS_GROUPS or key(o) in CACHE_KEYS]
    try:
        args += _diff_overrides(_cache_view(_compose_make_dataset(args)), _cache_view(cfg))
    except Exception as exc:  # best effort: the command still carries the run's own overrides
        log.debug("make_dataset command without resolved keys: %s", exc)
    args.append(f"data.cache_dir={cfg.data.cache_dir}")
    return " ".join(["python -m lensml.make_dataset", *(shlex.quote(a) for a in args)])


def _compose_make_dataset(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lensml.paths import CONF_DIR

    if GlobalHydra.instance().is_initialized():  # inside a @hydra.main app (same conf/ folder)
        return compose(config_name="make_dataset", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="make_dataset", overrides=overrides)


def _cache_view(cfg: DictConfig) -> dict[str, Any]:
    """The resolved keys of ``cfg`` that fix the cache's samples (physics groups, data seed and sizes)."""
    view: dict[str, Any] = {
        g: OmegaConf.to_container(cfg[g], resolve=True) for g in PHYSICS_GROUPS if g in cfg
    }
    if isinstance(view.get("sim"), dict):
        view["sim"] = {k: v for k, v in view["sim"].items() if k not in RUNTIME_SIM_KEYS}
    view["data"] = {k: OmegaConf.select(cfg, f"data.{k}") for k in ("seed", "n_train", "n_val", "n_test")}
    return view


def _diff_overrides(made: Mapping[str, Any], want: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Hydra overrides that turn ``made`` into ``want`` (nested dicts compared key by key)."""
    out = []
    for k, v in want.items():
        if k not in made:
            out.append(f"+{prefix}{k}={_hydra_value(v)}")
        elif isinstance(v, Mapping) and isinstance(made[k], Mapping):
            out += _diff_overrides(made[k], v, f"{prefix}{k}.")
        elif made[k] != v:
            out.append(f"{prefix}{k}={_hydra_value(v)}")
    out += [f"~{prefix}{k}" for k in made if k not in want]
    return out


def _hydra_value(v: Any) -> str:
    """``v`` in Hydra's override grammar."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{k}:{_hydra_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(_hydra_value(x) for x in v) + "]"
    text = str(v)
    plain = _PLAIN.match(text) and text.lower() not in ("null", "true", "false", "inf", "nan")
    return text if plain else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@hydra.main(version_base="1.3", config_path="../conf", config_name="make_dataset")
@clean_errors
def main(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    manifest = make_dataset(cfg)
    print(f"dataset cache in {cfg.data.cache_dir}: {manifest['counts']} (hash {manifest['config_hash']})")


if __name__ == "__main__":
    main()

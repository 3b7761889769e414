"""Pre-generate the dataset cache: ``python -m lensml.make_dataset [overrides]``.

Renders ``data.n_train / n_val / n_test`` samples with the composed physics config and ``data.seed`` into
``data.cache_dir`` (shards + ``manifest.json``, see ``lensml.data.cache``), with a progress bar. Re-running
after a crash resumes: finished shards are kept, bad ones re-rendered, temp files of killed writers swept.
Smaller sizes than the cache holds keep the larger cache (runs read its first samples); ``overwrite=true``
rebuilds it at exactly the requested sizes. Train on it with the same overrides plus ``data=cache``.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from lensml.cli import clean_errors
from lensml.config_checks import _int
from lensml.data.cache import cache_config, generate_cache, physics_config

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


@hydra.main(version_base="1.3", config_path="../conf", config_name="make_dataset")
@clean_errors
def main(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    manifest = make_dataset(cfg)
    print(f"dataset cache in {cfg.data.cache_dir}: {manifest['counts']} (hash {manifest['config_hash']})")


if __name__ == "__main__":
    main()

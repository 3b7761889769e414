"""Score trained checkpoints on test sets rendered under any test-time config (the evaluation code path).

A *run* is a training run dir (``lensml.train``): ``checkpoints/best-*.ckpt`` (or ``last.ckpt``) and its
overrides, read from ``overrides.json`` (written by ``lensml.study``), else ``.hydra/overrides.yaml`` (the
``lensml.train`` CLI). A *condition* is a list of Hydra overrides applied on top of the run's overrides; a
group choice in a condition (``noise=low_snr``, ``source=manga``) replaces the run's own settings of that
group (``noise.*``, ``source.*`` overrides are dropped). The test split is rendered ONCE per (physics config,
data seed) with ``Simulator.sample_batch`` and fed to every checkpoint through ``LensDataset``
(``lensml.data.dataset``), so channel selection and normalisation are exactly those of training.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lensml.data.cache import cache_config, config_hash, physics_config
from lensml.data.channels import InputNorm, n_channels, n_velocity_channels_of
from lensml.data.dataset import LensDataset
from lensml.errors import ConfigError, DataError
from lensml.sim.simulator import SUBHALO_METADATA_KEYS

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
#: raw sample keys kept beside the probabilities (subhalo masses, tau and c200: studies can bin by any mass)
RAW_KEYS = ("label", "mass_msun", *SUBHALO_METADATA_KEYS, "sub_x_arcsec", "sub_y_arcsec", "source_id")


def compose_train_config(overrides: Sequence[str], run_dir: str | Path = ".") -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides`` (``run_dir`` set, so no Hydra runtime is needed)."""
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"run_dir={run_dir}"])
    return cfg


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(run_overrides: Sequence[str], condition: Sequence[str]) -> list[str]:
    """Run overrides then the condition. A later override of the same key replaces an earlier one, and a group
    choice in the condition (``source=manga``) drops every earlier override inside that group
    (``source.*``)."""
    merged: list[str] = []
    n_run = len(run_overrides)
    for i, o in enumerate([*run_overrides, *condition]):
        k = _key(o)
        if "." not in k and i >= n_run:  # a group choice of the condition
            merged = [m for m in merged if not (_key(m) == k or _key(m).startswith(k + "."))]
        merged = [m for m in merged if _key(m) != k]
        merged.append(o)
    return merged


@dataclass
class Run:
    """A trained run: its dir, overrides, checkpoint, and the identifying fields of its ``metrics.json``."""

    run_dir: Path
    overrides: list[str]
    checkpoint: Path
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        return self.run_dir.name


def find_checkpoint(run_dir: Path, which: str = "best") -> Path:
    ckpts = run_dir / "checkpoints"
    best = sorted(ckpts.glob("best-*.ckpt"))
    if which == "best" and best:
        return best[-1]
    if (ckpts / "last.ckpt").exists():
        return ckpts / "last.ckpt"
    raise DataError(f"no checkpoint in {ckpts}; train the run first (python -m lensml.train ...)")


def load_run(run_dir: str | Path, which: str = "best") -> Run:
    """Read a run dir (see the module docstring)."""
    d = Path(run_dir)
    if (d / "overrides.json").exists():
        overrides = list(json.loads((d / "overrides.json").read_text()))
    elif (d / ".hydra" / "overrides.yaml").exists():
        overrides = list(yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text()) or [])
    else:
        raise DataError(
            f"{d} has neither overrides.json nor .hydra/overrides.yaml; is it a lensml.train run dir?"
        )
    overrides = [o for o in overrides if _key(o) not in ("run_dir", "hydra.run.dir")]
    meta = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
    meta = {k: meta.get(k) for k in ("model", "channels", "seed", "data_seed", "mass_bin", "wall_time_s")}
    return Run(d, overrides, find_checkpoint(d, which), meta)


def load_net(run: Run, cfg: DictConfig) -> torch.nn.Module:
    """The run's CNN with the checkpoint weights, in eval mode."""
    in_channels = n_channels(cfg.data.channels, n_velocity_channels_of(cfg))
    state = torch.load(run.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    weights = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    extra: dict[str, Any] = {}
    if "head_norm" in cfg.model.net and "head.3.weight" in weights and "head.4.weight" not in weights:
        extra["head_norm"] = "none"  # a residual net trained before the head had BatchNorm
    net = instantiate(cfg.model.net, in_channels=in_channels, _convert_="all", **extra)
    net.load_state_dict(weights)
    return net.eval()


class MemorySource:
    """A rendered test split held in memory (``SampleSource`` protocol of ``lensml.data.dataset``)."""

    def __init__(self, samples: Mapping[str, np.ndarray]) -> None:
        self.samples = samples

    def get(self, split: str, indices: np.ndarray, n: int) -> dict[str, np.ndarray]:
        return {k: np.asarray(v)[indices] for k, v in self.samples.items()}


def data_key(cfg: DictConfig, n_test: int) -> str:
    """Hash of what fixes the rendered test split: physics groups, data seed and size."""
    return config_hash({"cache": cache_config(physics_config(cfg), int(cfg.data.seed)), "n_test": n_test})


def render_test_split(cfg: DictConfig, n_test: int, batch: int = 256, residuals: bool = False
                      ) -> dict[str, np.ndarray]:
    """Samples ``0 .. n_test-1`` of the test split of ``cfg`` (physics + ``data.seed``); ``residuals``: with
    the residuals about the true smooth model as well (``lensml.data.oracle.RESIDUAL_KEYS``)."""
    from lensml.data.oracle import smooth_residuals
    from lensml.sim.simulator import build_simulator

    sim = build_simulator(physics_config(cfg))
    seed = int(cfg.data.seed)
    parts = [
        smooth_residuals(sim, seed, "test", np.arange(i, min(i + batch, n_test))) if residuals
        else sim.sample_batch(seed, "test", list(range(i, min(i + batch, n_test))))
        for i in range(0, n_test, batch)
    ]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


@torch.no_grad()
def predict(
    net: torch.nn.Module,
    cfg: DictConfig,
    samples: Mapping[str, np.ndarray],
    batch: int = 256,
    channels: str | None = None,
) -> np.ndarray:
    """P(subhalo) for every sample, inputs built by ``LensDataset`` with the run's channel mode."""
    n = len(samples["label"])
    norm = InputNorm.from_cfg(cfg.data)
    oracle = bool(cfg.data.get("oracle_residual", False))  # input: residuals about the smooth model
    ds = LensDataset(
        MemorySource(samples),
        "test",
        n,
        int(cfg.data.seed),
        channels or cfg.data.channels,
        norm.velocity_scale_kms,
        norm.flux_quantile,
        flux_norm=norm.flux_norm,
        flux_snr_scale=norm.flux_snr_scale,
        sigma_v_ref_kms=norm.sigma_v_ref_kms,
        oracle_residual=oracle,
    )
    out = []
    for i in range(0, n, batch):
        x = ds.__getitems__(list(range(i, min(i + batch, n))))["x"]
        out.append(torch.softmax(net(x).float(), dim=1)[:, 1].numpy())
    return np.concatenate(out).astype(np.float32)


def arc_geometry(samples: Mapping[str, np.ndarray], pixel_scale_arcsec: float) -> dict[str, np.ndarray]:
    """Per sample: distance (arcsec) from the subhalo to the nearest masked-in (arc) pixel centre (0 inside
    the arc) and the normalised observed flux at the subhalo pixel (flux / 99.5th percentile). NaN if none."""
    mask = np.asarray(samples["mask"], dtype=bool)
    flux = np.asarray(samples["flux"], dtype=np.float64)
    b, n, _ = mask.shape
    coords = (np.arange(n) - (n - 1) / 2.0) * pixel_scale_arcsec
    xx, yy = np.meshgrid(coords, coords)  # [row, col]: row follows +y, col follows +x
    sx, sy = np.asarray(samples["sub_x_arcsec"]), np.asarray(samples["sub_y_arcsec"])
    dist = np.full(b, np.nan)
    fl = np.full(b, np.nan)
    for i in np.flatnonzero(np.isfinite(sx)):
        d2 = (xx - sx[i]) ** 2 + (yy - sy[i]) ** 2
        inside = mask[i]
        dist[i] = 0.0 if not inside.any() else float(np.sqrt(d2[inside].min()))
        r, c = np.unravel_index(np.argmin(d2), d2.shape)
        if dist[i] <= pixel_scale_arcsec / np.sqrt(2.0) and inside[r, c]:
            dist[i] = 0.0
        peak = np.quantile(flux[i], 0.995)
        fl[i] = float(flux[i, r, c] / peak) if peak > 0 else np.nan
    return {"arc_distance_arcsec": dist, "arc_flux_frac": fl}


#: top-level override keys that do not change the rendered test samples (``data.seed`` / ``data.n_test`` do)
NON_PHYSICS_KEYS = (
    "model",
    "trainer",
    "logger",
    "callbacks",
    "data",
    "num_threads",
    "resume",
    "ckpt_path",
    "test_ckpt",
    "run_dir",
    "hydra",
)
PHYSICS_DATA_KEYS = ("data.seed", "data.n_test")
_RUN_CFG_CACHE: dict[tuple[str, ...], DictConfig] = {}


def physics_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides that can change the rendered samples (physics groups, seeds, experiment, ...)."""
    keep = []
    for o in overrides:
        k = _key(o)
        if k.split(".")[0] in NON_PHYSICS_KEYS and k not in PHYSICS_DATA_KEYS:
            continue
        keep.append(o)
    return keep


def run_config(run: Run, condition: Sequence[str]) -> DictConfig:
    """The run's own config (composed once per run) with the condition's ``data.*`` / ``model.*`` keys set."""
    key = (str(run.run_dir), *run.overrides)
    if key not in _RUN_CFG_CACHE:
        _RUN_CFG_CACHE[key] = compose_train_config(run.overrides, run.run_dir)
    cfg = _RUN_CFG_CACHE[key]
    updates = [o for o in condition if _key(o).split(".")[0] in ("data", "model")]
    if not updates:
        return cfg
    cfg = copy.deepcopy(cfg)
    for o in updates:
        k, _, value = o.lstrip("+").partition("=")
        if "." not in k:
            raise ConfigError(
                f"condition {o!r}: a {k} group choice cannot change at test time; set single keys"
            )
        OmegaConf.update(cfg, k, yaml.safe_load(value), force_add=True)
    return cfg


def score_runs(
    runs: Sequence[Run],
    condition: Sequence[str],
    n_test: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Score every run under ``condition``; test splits rendered once per distinct physics config.

    The physics config of a run under the condition is composed from its physics overrides (shared by all
    runs that differ only in model, channels, network seed or training settings); the network and its input
    encoding come from the run's own config. Returns ``run name -> {probs, label, mass_msun, the subhalo
    metadata (SUBHALO_METADATA_KEYS), sub_x_arcsec, sub_y_arcsec, arc_distance_arcsec, arc_flux_frac,
    source_id, data_key}``.
    """
    rendered: dict[str, dict[str, np.ndarray]] = {}
    physics: dict[tuple[str, ...], DictConfig] = {}
    out: dict[str, dict[str, np.ndarray]] = {}
    for run in runs:
        phys = tuple(physics_overrides(merge_overrides(run.overrides, condition)))
        if phys not in physics:
            try:
                physics[phys] = compose_train_config(list(phys))
            except Exception as exc:  # hydra's errors name the override; add the run and condition
                raise ConfigError(
                    f"run {run.run_dir}: condition {list(condition)} does not compose: {exc}"
                ) from exc
        pcfg = physics[phys]
        cfg = run_config(run, condition)
        n = int(n_test or pcfg.data.n_test)
        key = data_key(pcfg, n)
        oracle = bool(cfg.data.get("oracle_residual", False))  # the run reads residuals, not the images
        rkey = f"{key}:residuals" if oracle else key  # the same samples, rendered with their residuals
        if rkey not in rendered:
            if progress:
                progress(f"render {n} test samples ({key}) for {list(condition)}")
            samples = render_test_split(pcfg, n, residuals=oracle)
            samples.update(arc_geometry(samples, float(pcfg.instrument.pixel_scale_arcsec)))
            rendered[rkey] = samples
        samples = rendered[rkey]
        probs = predict(load_net(run, cfg), cfg, samples)
        keep = {k: samples[k] for k in (*RAW_KEYS, "arc_distance_arcsec", "arc_flux_frac")}
        out[run.name] = {"probs": probs, **keep, "data_key": np.array(key)}
    return out

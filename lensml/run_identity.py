"""The identity of a training run: what it learned from, as a plain dict, and that dict's hash.

The identity is the run's resolved ``conf/train.yaml`` without the keys that say where or how fast it ran
(paths, progress output, threads, data loading, the logger); the physics groups enter as the data cache hashes
them (``lensml.data.cache.cache_config``: runtime ``sim`` keys and the unused cube keys left out), so a
config that draws the same samples and trains the same network has the same identity.

``lensml.study`` records it beside a run (``run_config.json``) and re-uses a finished run only when the config
it would train now has the same hash; a run finished before this record existed is compared through its
``resolved_config.yaml`` (written by ``lensml.train``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lensml.atomic_io import write_json
from lensml.data.cache import cache_config, config_hash, physics_config
from lensml.sim.simulator import PHYSICS_GROUPS

RECORD = "run_config.json"
#: top-level keys that say where and how a run goes, not what it learns
RUNTIME_KEYS: frozenset[str] = frozenset({"run_dir", "num_threads", "resume", "ckpt_path", "logger", "hydra"})
#: keys of the same kind inside a group (``callbacks``: in every callback)
RUNTIME_GROUP_KEYS: dict[str, frozenset[str]] = {
    "trainer": frozenset({"enable_progress_bar", "enable_model_summary", "default_root_dir"}),
    "data": frozenset(
        {"cache_dir", "num_workers", "worker_threads", "persistent_workers", "pin_memory", "verify_cache",
         "memory_cache"}
    ),
    "callbacks": frozenset({"dirpath"}),
}


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """The identity of the run ``cfg``: a composed ``conf/train.yaml`` or a run's ``resolved_config.yaml``."""
    out: dict[str, Any] = {"samples": cache_config(physics_config(cfg), int(cfg.data.seed))}
    for key in cfg:
        if key in RUNTIME_KEYS or key in PHYSICS_GROUPS:
            continue
        node = cfg[key]
        plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        drop = RUNTIME_GROUP_KEYS.get(str(key), frozenset())
        if key == "callbacks" and isinstance(plain, dict):
            plain = {k: _without(v, drop) for k, v in plain.items()}
        elif drop:
            plain = _without(plain, drop)
        out[str(key)] = plain
    return out


def _without(node: Any, keys: frozenset[str]) -> Any:
    return {k: v for k, v in node.items() if k not in keys} if isinstance(node, dict) else node


def run_hash(cfg: DictConfig) -> str:
    """sha256 (16 hex characters) of ``run_identity(cfg)``."""
    return config_hash(run_identity(cfg))


def record(run_dir: Path, cfg: DictConfig) -> None:
    """Write ``<run_dir>/run_config.json``: the identity of the run about to be trained and its hash."""
    identity = run_identity(cfg)
    write_json(Path(run_dir) / RECORD, {"hash": config_hash(identity), "identity": identity})


def recorded_identity(run_dir: Path) -> dict[str, Any] | None:
    """The identity a run was trained with: from its record, else from its ``resolved_config.yaml``; None if
    it has neither. A residual net recorded before ``model.net.head_norm`` existed gets ``"none"`` (the head
    without BatchNorm it was trained with)."""
    rd = Path(run_dir)
    if (rd / RECORD).exists():
        identity = json.loads((rd / RECORD).read_text())["identity"]
    elif (rd / "resolved_config.yaml").exists():
        identity = run_identity(OmegaConf.load(rd / "resolved_config.yaml"))
    else:
        return None
    net = (identity.get("model") or {}).get("net")
    if isinstance(net, dict) and "resnet" in str(net.get("_target_", "")):
        net.setdefault("head_norm", "none")
    return identity


def differences(run_dir: Path, cfg: DictConfig) -> list[str] | None:
    """Dotted keys whose values differ between the run's recorded identity and ``cfg``'s ([] if none);
    None if the run has no record to compare with."""
    old = recorded_identity(run_dir)
    if old is None:
        return None
    # through JSON, as the record is stored (tuples become lists, keys strings)
    new = json.loads(json.dumps(run_identity(cfg), default=str))
    return _diff(old, new)


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".") or "<root>"]


def head_norm(run_dir: Path) -> str | None:
    """The ``model.net.head_norm`` a residual-net run was trained with (``recorded_identity``); None for
    other networks or a run without a record."""
    net = ((recorded_identity(run_dir) or {}).get("model") or {}).get("net") or {}
    return str(net["head_norm"]) if "head_norm" in net else None

"""A study's config: ``conf/study.yaml`` composed with a study and a scale preset from ``experiments/``.

``experiments/`` is on Hydra's search path (``hydra.searchpath`` in ``conf/study.yaml``, through the resolver
registered here), so two of its folders are config groups:

- ``study``: ``experiments/study/<name>.yaml`` (``# @package study``), one file per study: ``name`` (its file
  name), ``description``, ``common``, ``train``, ``evaluate``, ... (``lensml.study``, ``docs/science.md``) and
  optional ``scales: {<preset>: {epochs: 4, ...}}``, the study's own run sizes at a preset;
- ``scale``: ``experiments/scale/<name>.yaml`` (tiny, cpu, full, gpu): ``name``, ``n_train``, ``n_val``,
  ``n_test``, ``epochs``, ``batch_size``, ``seeds``, ``overrides``; each value is the study's own
  ``scales.<name>`` value if it has one (``oc.select``), else the preset's. The command line wins over both.

A study is composed and overridden like every other config (``study=headline scale=cpu scale.epochs=2
study.common=[...]``); ``-m study=a,b`` runs several.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from lensml.errors import ConfigError
from lensml.paths import CONF_DIR, PROJECT_ROOT

EXPERIMENTS_DIR = PROJECT_ROOT / "experiments"
STUDY_DIR = EXPERIMENTS_DIR / "study"
SCALE_DIR = EXPERIMENTS_DIR / "scale"
#: ``${lensml.experiments_dir:}``: the absolute path of ``experiments/`` (conf/study.yaml's search path)
RESOLVER = "lensml.experiments_dir"


def register_resolver() -> None:
    """Register ``${lensml.experiments_dir:}`` (idempotent); done when this module is imported."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, lambda: str(EXPERIMENTS_DIR))


register_resolver()


def study_names() -> list[str]:
    """The studies: the file names of ``experiments/study/*.yaml``."""
    return sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))


def scale_names() -> list[str]:
    """The scale presets: the file names of ``experiments/scale/*.yaml``."""
    return sorted(p.stem for p in SCALE_DIR.glob("*.yaml"))


def compose_study(overrides: Sequence[str] = ()) -> DictConfig:
    """``conf/study.yaml`` composed with ``overrides`` as ``python -m lensml.study`` composes it (no Hydra
    runtime: ``hydra.*`` is not in the result)."""
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("study", overrides=list(overrides))


def study_of(cfg: DictConfig) -> dict[str, Any]:
    """The composed study (plain, resolved) with its effective run sizes under ``scale`` (a dict with
    ``name``, ``n_train``, ..., ``seeds``, ``overrides``)."""
    study = OmegaConf.to_container(cfg.study, resolve=True)
    if not isinstance(study, dict) or not study.get("name"):
        raise ConfigError(
            "study.name is missing: a study file experiments/study/<name>.yaml starts with "
            "`# @package study` and sets `name: <name>`"
        )
    scale = OmegaConf.to_container(cfg.scale, resolve=True)
    for key in ("n_train", "n_val", "n_test", "epochs", "batch_size", "seeds"):
        if not isinstance(scale, dict) or scale.get(key) is None:
            raise ConfigError(f"scale.{key} is missing: set it in experiments/scale/<scale>.yaml")
    study["scale"] = scale
    return study


def load_study(name: str, scale: str = "full", overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Study ``name`` composed at scale preset ``scale`` (plus ``overrides``), as ``study_of`` returns it."""
    if name not in study_names():
        raise ConfigError(f"study={name!r}: {STUDY_DIR / name}.yaml does not exist; use {study_names()}")
    if scale not in scale_names():
        raise ConfigError(f"scale={scale!r}: {SCALE_DIR / scale}.yaml does not exist; use {scale_names()}")
    return study_of(compose_study([f"study={name}", f"scale={scale}", *overrides]))

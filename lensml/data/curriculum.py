"""Curriculum: the training split's priors annealed from an easy task to the target (``data.curriculum``).

Over the first ``frac`` of the training epochs (``total_epochs``; null: the trainer's ``max_epochs``) the
training samples come from easier priors, in ``stages`` steps of the progress ``t`` = 0, 1/stages, ...; from
then on (and for validation and test, always) from the target priors of the run:

- subhalo mass range: log-interpolated from ``mass_range_msun`` (start, e.g. [1e10, 1e11] M_sun) at t = 0 to
  the target range (``subhalo.mass_bin`` +- ``mass_bin_dex``/2, or ``subhalo.mass_range_msun``) at t = 1;
- nuisance priors (every prior of the ``lens`` and ``source`` groups): each range scaled about its centre
  by ``w = nuisance_width + (1 - nuisance_width) t`` (uniform / loguniform: the interval about its
  (geometric) centre; normal: sigma and the truncation bounds about the mean; w = 0: the centre value).
  ``choice`` and ``randint`` priors are left as they are.

Stage k's samples are those of a simulator built from the stage's config: sample i of the training split at
epoch e is a pure function of ``(seed, e, i)`` (the epoch fixes the stage), and with the inverse-CDF draws a
narrowed prior maps each sample's uniform to a value nearer the centre (the same lens, made easier). The
last stage (t = 1) is the unmodified target config.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lensml.errors import ConfigError

NUISANCE_GROUPS: tuple[str, ...] = ("lens", "source")


@dataclass(frozen=True)
class Curriculum:
    """Settings of ``data.curriculum`` (module docstring)."""

    enabled: bool = False
    frac: float = 0.3
    stages: int = 4
    mass_range_msun: Sequence[float] | None = (1.0e10, 1.0e11)
    nuisance_width: float = 0.0
    total_epochs: int | None = None

    @classmethod
    def from_cfg(cls, node: Mapping[str, Any] | None) -> Curriculum:
        """From the ``data.curriculum`` mapping (None: disabled); ``ConfigError`` naming the bad key."""
        if not node:
            return cls()
        unknown = set(node) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"data.curriculum has unknown keys {sorted(unknown)}; "
                              f"use {sorted(cls.__dataclass_fields__)}")
        c = cls(**dict(node))
        if not isinstance(c.enabled, bool):
            raise ConfigError(f"data.curriculum.enabled={c.enabled!r} must be true or false")
        if not 0.0 < float(c.frac) <= 1.0:
            raise ConfigError(f"data.curriculum.frac={c.frac!r} must lie in (0, 1], e.g. 0.3")
        if isinstance(c.stages, bool) or not isinstance(c.stages, int) or c.stages < 1:
            raise ConfigError(f"data.curriculum.stages={c.stages!r} must be an integer >= 1, e.g. 4")
        if not 0.0 <= float(c.nuisance_width) <= 1.0:
            raise ConfigError(f"data.curriculum.nuisance_width={c.nuisance_width!r} must lie in [0, 1]")
        m = c.mass_range_msun
        if m is not None and (len(m) != 2 or not 0 < float(m[0]) <= float(m[1])):
            raise ConfigError(f"data.curriculum.mass_range_msun={m!r} must be [low, high] M_sun, "
                              "0 < low <= high")
        t = c.total_epochs
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise ConfigError(f"data.curriculum.total_epochs={t!r} must be an integer >= 1, or null for "
                              "trainer.max_epochs")
        return c

    def progress(self, epoch: int) -> float:
        """The stage's progress t in {0, 1/stages, ..., 1} of training epoch ``epoch`` (1 when disabled)."""
        if not self.enabled:
            return 1.0
        if self.total_epochs is None:
            raise ConfigError("data.curriculum.total_epochs is null and no trainer set it; give a number")
        raw = int(epoch) / (float(self.frac) * self.total_epochs)
        if raw >= 1.0:
            return 1.0
        return math.floor(raw * self.stages) / self.stages

    def stage_config(self, sim_cfg: Any, t: float) -> Any:
        """The physics config of progress ``t`` (``t >= 1``: ``sim_cfg`` itself)."""
        if t >= 1.0:
            return sim_cfg
        cfg = copy.deepcopy(sim_cfg)
        if self.mass_range_msun is not None:
            lo, hi = target_mass_range(cfg)
            s_lo, s_hi = (math.log10(float(v)) for v in self.mass_range_msun)
            new = [10 ** (s_lo + (math.log10(lo) - s_lo) * t), 10 ** (s_hi + (math.log10(hi) - s_hi) * t)]
            OmegaConf.update(cfg, "subhalo.mass_bin", None)
            OmegaConf.update(cfg, "subhalo.mass_range_msun", new)
        w = float(self.nuisance_width) + (1.0 - float(self.nuisance_width)) * t
        for group in NUISANCE_GROUPS:
            node = cfg[group]
            for key in list(node.keys()):
                value = node[key]
                if isinstance(value, Mapping | DictConfig) and "dist" in value:
                    OmegaConf.update(cfg, f"{group}.{key}", narrow_prior(_plain(value), w), merge=False)
        return cfg


def _plain(value: Any) -> dict[str, Any]:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else dict(value)


def target_mass_range(cfg: Any) -> tuple[float, float]:
    """The target subhalo M200 range (M_sun) of a physics config: the mass bin, else ``mass_range_msun``."""
    sub = cfg["subhalo"]
    if sub.get("mass_bin") is not None:
        half = float(sub.get("mass_bin_dex", 1.0)) / 2
        return float(sub["mass_bin"]) * 10**-half, float(sub["mass_bin"]) * 10**half
    lo, hi = sub["mass_range_msun"]
    return float(lo), float(hi)


def narrow_prior(spec: Mapping[str, Any], w: float) -> Any:
    """Prior ``spec`` (``lensml`` prior mapping) with its spread scaled by ``w`` about its centre."""
    dist = spec["dist"]
    if dist == "uniform":
        c = 0.5 * (float(spec["low"]) + float(spec["high"]))
        if w == 0:
            return c
        return {**spec, "low": c - w * (c - float(spec["low"])), "high": c + w * (float(spec["high"]) - c)}
    if dist == "loguniform":
        lo, hi = math.log10(float(spec["low"])), math.log10(float(spec["high"]))
        c = 0.5 * (lo + hi)
        if w == 0:
            return 10**c
        return {**spec, "low": 10 ** (c - w * (c - lo)), "high": 10 ** (c + w * (hi - c))}
    if dist == "normal":
        m = float(spec["mean"])
        if w == 0:
            return m
        out = {**spec, "sigma": w * float(spec["sigma"])}
        for bound in ("low", "high"):
            if spec.get(bound) is not None:
                out[bound] = m + w * (float(spec[bound]) - m)
        return out
    return dict(spec)

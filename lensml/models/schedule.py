"""Per-step learning-rate schedules (``model.module.lr_schedule``): cosine with linear warm-up, one-cycle.

``cosine``: the factor on the optimiser's lr rises linearly from ~0 to 1 over the first ``warmup_frac`` of the
``total`` optimiser steps, then follows ``min_lr_frac + (1 - min_lr_frac) (1 + cos(pi t)) / 2`` with t from 0
to 1 over the rest. ``onecycle``: ``torch.optim.lr_scheduler.OneCycleLR`` with ``max_lr`` = the configured lr
and ``pct_start = warmup_frac`` (default 0.3 if 0). ``none``: constant lr.
"""

from __future__ import annotations

import math

import torch

from lensml.errors import ConfigError

SCHEDULES: tuple[str, ...] = ("none", "cosine", "onecycle")


def check_schedule(name: str, warmup_frac: float, min_lr_frac: float) -> None:
    """``ConfigError`` naming the ``model.module`` key: unknown schedule, or a fraction outside [0, 1)."""
    if name not in SCHEDULES:
        raise ConfigError(f"model.module.lr_schedule={name!r} is unknown; use one of {list(SCHEDULES)}")
    for key, v in (("warmup_frac", warmup_frac), ("min_lr_frac", min_lr_frac)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= float(v) < 1.0:
            raise ConfigError(f"model.module.{key}={v!r} must be a number in [0, 1), e.g. 0.05")


def cosine_factor(step: int, total: int, warmup_frac: float, min_lr_frac: float) -> float:
    """The lr factor of step ``step`` (0-based) of ``total`` under the cosine-with-warm-up schedule."""
    warm = int(round(warmup_frac * total))
    if step < warm:
        return (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return min_lr_frac + (1.0 - min_lr_frac) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_scheduler(
    opt: torch.optim.Optimizer, name: str, total: int, warmup_frac: float, min_lr_frac: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-step scheduler ``name`` over ``total`` steps (module docstring)."""
    total = max(1, int(total))
    if name == "onecycle":
        lrs = [g["lr"] for g in opt.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lrs, total_steps=total,
                                                   pct_start=warmup_frac or 0.3)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: cosine_factor(step, total, warmup_frac, min_lr_frac))

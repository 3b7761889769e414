"""Composite single-plane lens models in PyTorch: sum of profiles, ray shooting (arcsec, batch first).

Profile names and keyword arguments are lenstronomy's
(``LensModel(lens_model_list).alpha(x, y, kwargs_list)``); the profiles come from the registry
(``lensml.sim.profiles``), their conventions and shapes from ``lensml.sim.profiles.base``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from lensml.errors import ConfigError
from lensml.sim.profiles import PROFILES as _REGISTRY
from lensml.sim.profiles import get_profile

#: lenstronomy name -> torch deflection (from the registry).
PROFILES: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {n: p.alpha for n, p in _REGISTRY.items()}


def alpha_total(
    x: Tensor, y: Tensor, lens_model_list: Sequence[str], kwargs_list: Sequence[Mapping]
) -> tuple[Tensor, Tensor]:
    """Sum of the deflections (arcsec) of the profiles ``lens_model_list`` with ``kwargs_list``."""
    if len(lens_model_list) != len(kwargs_list):
        raise ConfigError(
            f"lens_model_list has {len(lens_model_list)} profiles but kwargs_list has {len(kwargs_list)} "
            "entries; give one kwargs dict per profile."
        )
    funcs = [get_profile(name).alpha for name in lens_model_list]
    ax, ay = torch.zeros_like(x), torch.zeros_like(y)
    for func, kwargs in zip(funcs, kwargs_list):
        dax, day = func(x, y, **kwargs)
        ax = ax + dax
        ay = ay + day
    return ax, ay


def ray_shoot(
    x: Tensor, y: Tensor, lens_model_list: Sequence[str], kwargs_list: Sequence[Mapping]
) -> tuple[Tensor, Tensor]:
    """Source-plane positions beta = theta - alpha(theta) (arcsec), single lens plane."""
    ax, ay = alpha_total(x, y, lens_model_list, kwargs_list)
    return x - ax, y - ay

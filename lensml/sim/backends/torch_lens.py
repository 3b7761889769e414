"""Composite single-plane lens models in PyTorch: sum of profiles, ray shooting (arcsec, batch first).

Profile names and keyword arguments are lenstronomy's
(``LensModel(lens_model_list).alpha(x, y, kwargs_list)``); see ``lensml.sim.backends.torch_deflections``
for the conventions and shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from lensml.errors import ConfigError
from lensml.sim.backends.torch_deflections import (
    alpha_epl,
    alpha_nfw,
    alpha_shear,
    alpha_sie,
    alpha_sis,
    alpha_tnfw,
)

PROFILES: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "SIS": alpha_sis,
    "SIE": alpha_sie,
    "EPL": alpha_epl,
    "SHEAR": alpha_shear,
    "NFW": alpha_nfw,
    "TNFW": alpha_tnfw,
}


def _profile(name: str) -> Callable[..., tuple[Tensor, Tensor]]:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"Unknown lens profile {name!r} in lens_model_list; use one of {sorted(PROFILES)}."
        ) from None


def alpha_total(
    x: Tensor, y: Tensor, lens_model_list: Sequence[str], kwargs_list: Sequence[Mapping]
) -> tuple[Tensor, Tensor]:
    """Sum of the deflections (arcsec) of the profiles ``lens_model_list`` with ``kwargs_list``."""
    if len(lens_model_list) != len(kwargs_list):
        raise ConfigError(
            f"lens_model_list has {len(lens_model_list)} profiles but kwargs_list has {len(kwargs_list)} "
            "entries; give one kwargs dict per profile."
        )
    funcs = [_profile(name) for name in lens_model_list]
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

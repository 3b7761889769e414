"""The lens profiles, one module each, and the registry that the simulator, both backends and the compiled
kernels read (``PROFILES``). Nothing else lists profile names.

A profile module defines ``PROFILE = LensProfile(...)`` (``lensml.sim.profiles.base``): its lenstronomy name,
parameters with units, torch deflection, parameter checks, role in the lens list, and (where it has one) its
columns in the compiled kernels. Adding one: write the module, add it to ``_MODULES`` below
(docs/lens_physics.md, "How to add a profile").
"""

from __future__ import annotations

from lensml.errors import ConfigError
from lensml.sim.profiles import epl, multipole, nfw, shear, sie, sis, tnfw
from lensml.sim.profiles.base import LensProfile

_MODULES = (sis, sie, epl, shear, nfw, tnfw, multipole)
#: lenstronomy name -> profile.
PROFILES: dict[str, LensProfile] = {m.PROFILE.name: m.PROFILE for m in _MODULES}


def get_profile(name: str, key: str = "lens_model_list") -> LensProfile:
    """The profile called ``name`` (``ConfigError`` naming ``key`` and the known names if none)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"Unknown lens profile {name!r} in {key}; use one of {sorted(PROFILES)}.") from None


def names_with_role(role: str) -> tuple[str, ...]:
    """Names of the profiles with ``role`` (``base.ROLES``), in registry order."""
    return tuple(name for name, p in PROFILES.items() if p.role == role)

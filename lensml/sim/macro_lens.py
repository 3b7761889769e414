"""Macro (main deflector) lens conventions and validation.

Ellipticity convention (lenstronomy ``Util.param_util``): complex ellipticity moduli

    e1 = (1 - q) / (1 + q) cos(2 phi),   e2 = (1 - q) / (1 + q) sin(2 phi),

with q = minor / major axis ratio in (0, 1] and phi the position angle of the major axis in radians, measured
counter-clockwise from the +x axis; inversely phi = atan2(e2, e1) / 2, q = (1 - |e|) / (1 + |e|), where
lenstronomy clips |e| at 0.9999 (reproduced here). Angles (theta_E, centres) are in arcsec; theta_E is the
product-averaged Einstein radius (see ``lensml.sim.profiles.sie``).

Macro models: the profiles of role 'macro' in the registry (``lensml.sim.profiles``: 'SIE' {theta_E, e1, e2,
center_x, center_y}, 'EPL' {theta_E, gamma, e1, e2, center_x, center_y}); ``q``/``phi`` may be given
instead of ``e1``/``e2``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lensml.errors import ConfigError
from lensml.sim.profiles import PROFILES, names_with_role
from lensml.sim.profiles.base import Q_MIN, as_array, ellipticity_to_q_phi, q_phi_to_ellipticity  # noqa: F401
from lensml.sim.profiles.epl import GAMMA_RANGE  # noqa: F401

#: Macro model -> its lenstronomy parameters (from the registry).
MACRO_MODELS: dict[str, tuple[str, ...]] = {n: tuple(PROFILES[n].params) for n in names_with_role("macro")}


def validate_macro_kwargs(model: str, kwargs: Mapping, key_prefix: str = "lens") -> dict[str, np.ndarray]:
    """Check macro-lens parameters (scalars or per-sample arrays); return lenstronomy kwargs (e1/e2 form).

    Raises ``ConfigError`` naming ``<key_prefix>.<param>``: unknown model, missing parameter, theta_E <= 0,
    axis ratio outside [Q_MIN, 1] (given as q or implied by e1, e2), and the profile's own checks (EPL: gamma
    outside (1, 3)).
    """
    if model not in MACRO_MODELS:
        raise ConfigError(
            f"Unknown macro lens model {model!r} ({key_prefix}.model); use one of {list(MACRO_MODELS)}."
        )
    k = dict(kwargs)
    if "e1" not in k and "e2" not in k and ("q" in k or "phi" in k):
        for name in ("q", "phi"):
            if name not in k:
                raise ConfigError(f"{key_prefix}.{name} is missing; give both q and phi (or e1 and e2).")
        q = as_array(k, "q", f"{key_prefix}.q")
        if np.any(q <= 0) or np.any(q > 1) or np.any(q < Q_MIN):
            raise ConfigError(
                f"{key_prefix}.q = {k['q']!r} must be in (0, 1] (minor/major axis ratio) and >= {Q_MIN}; "
                "set a value such as 0.7."
            )
        k["e1"], k["e2"] = q_phi_to_ellipticity(q, as_array(k, "phi", f"{key_prefix}.phi"))
        del k["q"], k["phi"]
    k.setdefault("center_x", 0.0)
    k.setdefault("center_y", 0.0)
    return PROFILES[model].check(k, key_prefix)

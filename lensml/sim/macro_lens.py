"""Macro (main deflector) lens conventions and validation.

Ellipticity convention (lenstronomy ``Util.param_util``): complex ellipticity moduli

    e1 = (1 - q) / (1 + q) cos(2 phi),   e2 = (1 - q) / (1 + q) sin(2 phi),

with q = minor / major axis ratio in (0, 1] and phi the position angle of the major axis in radians, measured
counter-clockwise from the +x axis; inversely phi = atan2(e2, e1) / 2, q = (1 - |e|) / (1 + |e|), where
lenstronomy clips |e| at 0.9999 (reproduced here). Angles (theta_E, centres) are in arcsec; theta_E is the
product-averaged Einstein radius (see ``lensml.sim.backends.torch_deflections``).

Supported macro models: 'SIE' {theta_E, e1, e2, center_x, center_y} and 'EPL' {theta_E, gamma, e1, e2,
center_x, center_y}; ``q``/``phi`` may be given instead of ``e1``/``e2``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lensml.errors import ConfigError

MACRO_MODELS: dict[str, tuple[str, ...]] = {
    "SIE": ("theta_E", "e1", "e2", "center_x", "center_y"),
    "EPL": ("theta_E", "gamma", "e1", "e2", "center_x", "center_y"),
}
Q_MIN = 0.05  # below this the EPL series converges too slowly and lenstronomy's |e| clip is near
GAMMA_RANGE = (1.0, 3.0)  # open interval: EPL needs t = gamma - 1 in (0, 2)
_MAX_ECC = 0.9999


def ellipticity_to_q_phi(e1: float | np.ndarray, e2: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(q, phi [rad]) from (e1, e2), as lenstronomy ``ellipticity2phi_q`` (which returns them as (phi, q))."""
    e1, e2 = np.asarray(e1, dtype=np.float64), np.asarray(e2, dtype=np.float64)
    phi = np.arctan2(e2, e1) / 2.0
    c = np.minimum(np.hypot(e1, e2), _MAX_ECC)
    return (1.0 - c) / (1.0 + c), phi


def q_phi_to_ellipticity(q: float | np.ndarray, phi: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(e1, e2) from axis ratio q and position angle phi [rad], as lenstronomy ``phi_q2_ellipticity``."""
    q, phi = np.asarray(q, dtype=np.float64), np.asarray(phi, dtype=np.float64)
    mod = (1.0 - q) / (1.0 + q)
    return mod * np.cos(2.0 * phi), mod * np.sin(2.0 * phi)


def _as_array(kwargs: Mapping, name: str, key: str) -> np.ndarray:
    value = kwargs[name]
    try:
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} = {value!r} is not a number; set a number (arcsec or dimensionless).") \
            from None
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{key} = {value!r} is not finite; set a finite number.")
    return arr


def validate_macro_kwargs(model: str, kwargs: Mapping, key_prefix: str = "lens") -> dict[str, np.ndarray]:
    """Check macro-lens parameters (scalars or per-sample arrays); return lenstronomy kwargs (e1/e2 form).

    Raises ``ConfigError`` naming ``<key_prefix>.<param>``: unknown model, missing parameter, theta_E <= 0,
    axis ratio outside [Q_MIN, 1] (given as q or implied by e1, e2), EPL gamma outside (1, 3).
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
        q = _as_array(k, "q", f"{key_prefix}.q")
        if np.any(q <= 0) or np.any(q > 1) or np.any(q < Q_MIN):
            raise ConfigError(
                f"{key_prefix}.q = {k['q']!r} must be in (0, 1] (minor/major axis ratio) and >= {Q_MIN}; "
                "set a value such as 0.7."
            )
        k["e1"], k["e2"] = q_phi_to_ellipticity(q, _as_array(k, "phi", f"{key_prefix}.phi"))
        del k["q"], k["phi"]
    k.setdefault("center_x", 0.0)
    k.setdefault("center_y", 0.0)
    out: dict[str, np.ndarray] = {}
    for name in MACRO_MODELS[model]:
        if name not in k:
            raise ConfigError(
                f"{key_prefix}.{name} is missing for the {model} macro lens; add it to the config."
            )
        out[name] = _as_array(k, name, f"{key_prefix}.{name}")
    unknown = sorted(set(k) - set(MACRO_MODELS[model]))
    if unknown:
        raise ConfigError(
            f"{key_prefix}: parameters {unknown} are not {model} parameters; "
            f"valid: {list(MACRO_MODELS[model])}."
        )
    if np.any(out["theta_E"] <= 0):
        raise ConfigError(
            f"{key_prefix}.theta_E = {kwargs['theta_E']!r} must be > 0 arcsec; set an Einstein radius "
            "such as 1.0."
        )
    e_mod = np.hypot(out["e1"], out["e2"])
    if np.any(e_mod >= 1.0) or np.any((1.0 - e_mod) / (1.0 + e_mod) < Q_MIN):
        raise ConfigError(
            f"{key_prefix}.e1/e2 = ({k['e1']!r}, {k['e2']!r}) give |e| = {np.max(e_mod):.3g}, "
            f"i.e. axis ratio q = (1 - |e|) / (1 + |e|) outside [{Q_MIN}, 1]; "
            f"use |e| <= {(1 - Q_MIN) / (1 + Q_MIN):.3f} "
            f"(or {key_prefix}.q in [{Q_MIN}, 1])."
        )
    if model == "EPL":
        g = out["gamma"]
        if np.any(g <= GAMMA_RANGE[0]) or np.any(g >= GAMMA_RANGE[1]):
            raise ConfigError(
                f"{key_prefix}.gamma = {kwargs['gamma']!r} must be in the open interval {GAMMA_RANGE} "
                "(3D power-law slope; 2 = isothermal); set e.g. 2.0."
            )
    return out

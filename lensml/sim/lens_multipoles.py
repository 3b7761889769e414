"""Angular multipoles of the main lens in the simulator (``lens.multipoles``): settings, draws, kwargs.

Config (``conf/lens/sie.yaml``)::

    multipoles:
      orders: [3, 4]                 # one lenstronomy 'MULTIPOLE' per order, after the subhalo
      amplitude_frac: {dist: uniform, low: 0.0, high: 0.01}   # a_m / theta_E
      orientation: free              # free | tied

Amplitudes of order 0-1 % of theta_E: Stacey et al. (2024) measure |a_m| / theta_E <~ 0.01 for m = 3, 4 in
ALMA lenses. ``orientation: free`` draws phi_m uniform in [0, 2 pi / m) (the pattern's period);
``tied`` sets phi_m to the ellipse's position angle phi = atan2(e2, e1) / 2 (for m = 4 a positive a_m then
makes disky, a negative one boxy isodensity contours: give ``amplitude_frac`` a negative ``low`` for both).
The multipoles share the lens centre. Their uniforms come from their own Philox stream ("multipole": two
slots per order, amplitude then orientation), independent of the subhalo stream, so they have the same prior
in both classes. ``orders: []`` (or ``multipoles: null``) switches them off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lensml.errors import ConfigError

ORIENTATIONS: tuple[str, ...] = ("free", "tied")


@dataclass(frozen=True)
class MultipoleSettings:
    orders: tuple[int, ...]
    amplitude_frac: Any  # prior of a_m / theta_E
    orientation: str

    @property
    def n_slots(self) -> int:
        """Uniforms per sample of the multipole stream."""
        return 2 * len(self.orders)


def multipole_settings(c: Mapping[str, Any] | None) -> MultipoleSettings:
    """Validated ``lens.multipoles`` (``ConfigError`` naming the key)."""
    from lensml.numerics.priors import check_range

    c = c or {}
    orders = c.get("orders") or []
    if not isinstance(orders, list | tuple) or any(
        isinstance(m, bool) or not isinstance(m, int) or m < 2 for m in orders
    ):
        raise ConfigError(f"lens.multipoles.orders={orders!r} must be a list of integers >= 2, e.g. [3, 4].")
    if len(set(orders)) != len(orders):
        raise ConfigError(f"lens.multipoles.orders={list(orders)} repeats an order; list each once.")
    orientation = c.get("orientation", "free")
    if orientation not in ORIENTATIONS:
        raise ConfigError(
            f"lens.multipoles.orientation={orientation!r} is unknown; use one of {list(ORIENTATIONS)}."
        )
    amp = c.get("amplitude_frac")
    if orders:
        if amp is None:
            raise ConfigError("lens.multipoles.amplitude_frac is missing; add a prior of a_m / theta_E.")
        check_range(amp, "lens.multipoles.amplitude_frac", -0.5, 0.5, what="a_m / theta_E")
    return MultipoleSettings(tuple(int(m) for m in orders), amp, str(orientation))


def draw_multipoles(
    s: MultipoleSettings, u: np.ndarray, lens: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``multipole_a_<m>`` (arcsec) and ``multipole_phi_<m>`` (rad) per order from the uniforms ``u``."""
    from lensml.numerics.priors import quantile

    out = {}
    for i, m in enumerate(s.orders):
        out[f"multipole_a_{m}"] = np.asarray(quantile(s.amplitude_frac, u[:, 2 * i]), float) * lens["theta_E"]
        if s.orientation == "tied":
            out[f"multipole_phi_{m}"] = np.arctan2(lens["e2"], lens["e1"]) / 2.0
        else:
            out[f"multipole_phi_{m}"] = 2.0 * math.pi / m * u[:, 2 * i + 1]
    return out


def multipole_kwargs(s: MultipoleSettings, lens: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Batch-first lenstronomy kwargs of the 'MULTIPOLE' entries, in the order of ``s.orders``."""
    out = []
    for m in s.orders:
        a = np.asarray(lens[f"multipole_a_{m}"], float)
        out.append(
            {
                "m": np.full(a.shape, float(m)),
                "a_m": a,
                "phi_m": np.asarray(lens[f"multipole_phi_{m}"], float),
                "center_x": np.asarray(lens["center_x"], float),
                "center_y": np.asarray(lens["center_y"], float),
            }
        )
    return out

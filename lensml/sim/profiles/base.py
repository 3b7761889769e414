"""What a lens profile is: ``LensProfile`` (one per module of ``lensml.sim.profiles``), and the helpers the
profiles share. Imports nothing from ``lensml.sim`` above it.

Conventions (lenstronomy 1.14's, so parameter dicts pass unchanged to ``lenstronomy.LensModel``):

- Angles, positions, Einstein radii, scale radii and deflections in **arcsec**.
- Ellipticity: complex moduli ``e1 = (1 - q) / (1 + q) cos 2 phi``, ``e2 = (1 - q) / (1 + q) sin 2 phi``
  (``lenstronomy.Util.param_util``), q = minor / major axis ratio, phi the major axis' position angle
  (rad, counter-clockwise from +x); ``|e|`` is clipped at 0.9999 as lenstronomy does.
- Torch deflections: ``x, y`` of shape (B, ...) (a shared grid may be (1, H, W)); every parameter a python
  float, a 0-d tensor, or a (B,) tensor / array, broadcast over x's trailing dims; results in x's dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from lensml.errors import ConfigError

Param = float | int | Tensor | np.ndarray
#: A torch deflection: ``alpha(x, y, **kwargs) -> (alpha_x, alpha_y)`` (arcsec).
Deflection = Callable[..., tuple[Tensor, Tensor]]

MAX_ECC = 0.9999  # lenstronomy's clip of |e| in ellipticity2phi_q
#: Smallest axis ratio accepted: below it the EPL series converges too slowly and lenstronomy's |e| clip
#: is near.
Q_MIN = 0.05

#: Roles of a profile in the simulator's lens list ``[macro, SHEAR, perturbations..., subhalo]``.
ROLES: tuple[str, ...] = ("macro", "shear", "perturbation", "subhalo")
#: How the torch backend evaluates a profile (``torch_sparse.deflection_sparse``): ``plain`` calls
#: ``alpha``; ``lane_aligned`` pads the batch so that every element takes torch's SIMD path (atan2 / pow of
#: per-sample values); ``series_grouped`` also groups samples by series length (EPL); ``radial_table``
#: interpolates |alpha| / R from exact tables (needs ``radial_kwargs``).
TORCH_EVAL: tuple[str, ...] = ("plain", "lane_aligned", "series_grouped", "radial_table")
#: How the torch grid path evaluates it (``torch_grid``): ``sie_terms`` (the SIE's two rotated-frame
#: terms), ``radial_table``, or ``deflection`` (the torch backend's deflection).
GRID_EVAL: tuple[str, ...] = ("sie_terms", "radial_table", "deflection")
#: Sections of the compiled kernels' per-sample tables (``cpu_terms``): ``linear`` (folded into the affine
#: map, SHEAR), ``macro`` (one per sample), ``sub`` (one radial profile per sample), ``extra`` (up to
#: ``cpu_terms.N_EXTRA`` additive terms, e.g. multipoles).
KERNEL_SLOTS: tuple[str, ...] = ("linear", "macro", "sub", "extra")


@dataclass(frozen=True)
class KernelPacking:
    """A profile's columns in the compiled kernels' tables (``cpu_terms``).

    ``slot``: the table section (``KERNEL_SLOTS``); ``flag``: the kernel's code for this profile in that
    section (its first column; 0 means "none"); ``columns``: the *names* of the profile's own columns, in
    the order ``pack`` returns them (the kernel reads them by these names, ``cpu_terms.column``);
    ``pack(kw, affine) -> (R, len(columns))`` from (R,) float64 kwargs and the source placement (R, 2, 2).
    """

    slot: str
    flag: float
    columns: tuple[str, ...]
    pack: Callable[[Mapping[str, np.ndarray], np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class LensProfile:
    """One lens profile: its lenstronomy name and parameters, torch deflection, checks and kernel packing.

    ``params``: lenstronomy keyword -> unit and meaning (the docs and the checks read it); ``optional``:
    keywords with a default; ``strength``: the keyword whose 0 means "no deflection" (those samples are
    skipped); ``check(kwargs, key_prefix)`` raises ``ConfigError`` naming ``<key_prefix>.<param>`` and returns
    the checked kwargs as float64 arrays; ``radial_kwargs(tau)``: the kwargs of the universal radial table
    (Rs = 1, alpha_Rs = 1) at r_trunc / Rs = tau.
    """

    name: str
    params: dict[str, str]
    alpha: Deflection
    role: str
    optional: tuple[str, ...] = ("center_x", "center_y")
    strength: str | None = None
    check: Callable[[Mapping, str], dict[str, np.ndarray]] | None = None
    torch_eval: str = "plain"
    grid_eval: str = "deflection"
    kernel: KernelPacking | None = None
    radial_kwargs: Callable[[float], dict[str, float]] | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.role in ROLES and self.torch_eval in TORCH_EVAL and self.grid_eval in GRID_EVAL
        assert self.kernel is None or self.kernel.slot in KERNEL_SLOTS


# -- torch helpers -----------------------------------------------------------------------------------------


def param(p: Param, x: Tensor) -> Tensor:
    """``p`` as a tensor on x's device/dtype, shaped to broadcast against ``x`` (batch first)."""
    t = torch.as_tensor(p, dtype=x.dtype, device=x.device)
    if t.ndim == 1 and x.ndim > 1:
        t = t.reshape(t.shape[0], *([1] * (x.ndim - 1)))
    return t


def shifted(x: Tensor, y: Tensor, cx: Param, cy: Param) -> tuple[Tensor, Tensor]:
    """Offsets from the profile's centre."""
    return x - param(cx, x), y - param(cy, x)


def phi_q_terms(e1: Tensor, e2: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(cos phi, sin phi, q, 1 - q^2) from e1, e2; 1 - q^2 = 4c / (1 + c)^2 avoids cancellation."""
    phi = torch.atan2(e2, e1) / 2
    c = torch.clamp(torch.sqrt(e1 * e1 + e2 * e2), max=MAX_ECC)
    q = (1 - c) / (1 + c)
    one_minus_q2 = 4 * c / (1 + c) ** 2
    return torch.cos(phi), torch.sin(phi), q, one_minus_q2


def rotate_in(dx: Tensor, dy: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinates in the frame of the major axis (lenstronomy util.rotate by +phi)."""
    return dx * cos + dy * sin, -dx * sin + dy * cos


def rotate_out(ax: Tensor, ay: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Deflection back to the sky frame (rotate by -phi)."""
    return ax * cos - ay * sin, ax * sin + ay * cos


# -- parameter checks --------------------------------------------------------------------------------------


def as_array(kwargs: Mapping, name: str, key: str) -> np.ndarray:
    """``kwargs[name]`` as a finite float64 array (``ConfigError`` naming ``key`` if it is not)."""
    value = kwargs[name]
    try:
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} = {value!r} is not a number; set a number (arcsec or dimensionless).") \
            from None
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{key} = {value!r} is not finite; set a finite number.")
    return arr


def checked_params(profile: LensProfile, kwargs: Mapping, key_prefix: str) -> dict[str, np.ndarray]:
    """The profile's keywords as float64 arrays: every required one present, none unknown."""
    k = dict(kwargs)
    out: dict[str, np.ndarray] = {}
    for name in profile.params:
        if name not in k:
            if name in profile.optional:
                continue
            raise ConfigError(
                f"{key_prefix}.{name} is missing for the {profile.name} profile; add it to the config."
            )
        out[name] = as_array(k, name, f"{key_prefix}.{name}")
    unknown = sorted(set(k) - set(profile.params))
    if unknown:
        raise ConfigError(
            f"{key_prefix}: parameters {unknown} are not {profile.name} parameters; "
            f"valid: {list(profile.params)}."
        )
    return out


def check_positive(out: Mapping[str, np.ndarray], name: str, key_prefix: str, example: str) -> None:
    """``ConfigError`` unless every value of ``out[name]`` is > 0."""
    if np.any(out[name] <= 0):
        raise ConfigError(f"{key_prefix}.{name} = {out[name]!r} must be > 0; set e.g. {example}.")


def ellipticity_to_q_phi(e1: float | np.ndarray, e2: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(q, phi [rad]) from (e1, e2), as lenstronomy ``ellipticity2phi_q`` (which returns them as (phi, q))."""
    e1, e2 = np.asarray(e1, dtype=np.float64), np.asarray(e2, dtype=np.float64)
    phi = np.arctan2(e2, e1) / 2.0
    c = np.minimum(np.hypot(e1, e2), MAX_ECC)
    return (1.0 - c) / (1.0 + c), phi


def q_phi_to_ellipticity(q: float | np.ndarray, phi: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(e1, e2) from axis ratio q and position angle phi [rad], as lenstronomy ``phi_q2_ellipticity``."""
    q, phi = np.asarray(q, dtype=np.float64), np.asarray(phi, dtype=np.float64)
    mod = (1.0 - q) / (1.0 + q)
    return mod * np.cos(2.0 * phi), mod * np.sin(2.0 * phi)


def check_ellipse(out: Mapping[str, np.ndarray], key_prefix: str) -> None:
    """theta_E > 0 and an axis ratio in [Q_MIN, 1] implied by e1, e2 (``ConfigError`` naming the keys)."""
    if np.any(out["theta_E"] <= 0):
        raise ConfigError(
            f"{key_prefix}.theta_E = {out['theta_E']!r} must be > 0 arcsec; set an Einstein radius "
            "such as 1.0."
        )
    e_mod = np.hypot(out["e1"], out["e2"])
    if np.any(e_mod >= 1.0) or np.any((1.0 - e_mod) / (1.0 + e_mod) < Q_MIN):
        raise ConfigError(
            f"{key_prefix}.e1/e2 = ({out['e1']!r}, {out['e2']!r}) give |e| = {np.max(e_mod):.3g}, "
            f"i.e. axis ratio q = (1 - |e|) / (1 + |e|) outside [{Q_MIN}, 1]; "
            f"use |e| <= {(1 - Q_MIN) / (1 + Q_MIN):.3f} "
            f"(or {key_prefix}.q in [{Q_MIN}, 1])."
        )

"""MULTIPOLE: a circular angular multipole of order m >= 2 of the main lens (lenstronomy 'MULTIPOLE', Xu+ 2013
eq. B12), a perturbation of the macro model.

Potential ``psi = r a_m / (1 - m^2) cos(m (phi - phi_m))``; convergence ``kappa = a_m / (2 r) cos(m (phi -
phi_m))`` (times m^2 - 1 over m^2 - 1: the isodensity contours of an isothermal lens of Einstein radius
theta_E get an order-m wiggle of relative amplitude ~ a_m / theta_E). Deflection, with (c, s) = (cos phi,
sin phi), C = cos m (phi - phi_m), S = sin m (phi - phi_m), K = a_m / (1 - m^2):

    alpha_x = K (c C + m s S),   alpha_y = K (s C - m c S)

(independent of r; at r = 0, phi = 0 as lenstronomy's ``cart2polar``). ``a_m`` in arcsec, ``phi_m`` in rad
(counter-clockwise from +x; the pattern repeats every 2 pi / m). cos m phi, sin m phi come from (c + i s)^m,
so no transcendental function is evaluated per ray. m = 3 and 4 are the orders the simulator draws (Stacey
et al. 2024, 2025; ``lens.multipoles``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from lensml.errors import ConfigError
from lensml.jit import inline
from lensml.numerics.simd_math import F32
from lensml.sim.profiles.base import KernelPacking, LensProfile, Param, checked_params, param, shifted


def _max_order(m: Param) -> int:
    """The largest order of ``m`` (integers >= 2, per sample)."""
    values = np.asarray(m.detach().cpu() if hasattr(m, "detach") else m, dtype=float)
    if np.any(values != np.round(values)) or np.any(values < 2):
        raise ConfigError(f"MULTIPOLE m = {values.tolist()} must be integers >= 2.")
    return int(values.max())


def alpha_multipole(
    x: Tensor,
    y: Tensor,
    m: Param,
    a_m: Param,
    phi_m: Param,
    center_x: Param = 0.0,
    center_y: Param = 0.0,
    r_E: Param = 1.0,  # noqa: ARG001 - lenstronomy's normalisation for m = 1 only
):
    """Circular multipole of order m >= 2 (lenstronomy 'MULTIPOLE'); see the module docstring."""
    top = _max_order(m)
    order = param(m, x)
    dx, dy = shifted(x, y, center_x, center_y)
    r = torch.sqrt(dx * dx + dy * dy)
    pos = r > 0
    r_safe = torch.where(pos, r, torch.ones_like(r))
    c = torch.where(pos, dx / r_safe, torch.ones_like(r))
    s = torch.where(pos, dy / r_safe, torch.zeros_like(r))
    cm, sm = c, s
    for k in range(2, top + 1):  # (c + i s)^m, each sample up to its own m
        more = order >= k
        cm, sm = torch.where(more, cm * c - sm * s, cm), torch.where(more, cm * s + sm * c, sm)
    k = param(a_m, x) / (1 - order * order)
    phi = param(phi_m, x)
    kc, ks = k * torch.cos(order * phi), k * torch.sin(order * phi)
    big_c = kc * cm + ks * sm  # K cos m (phi - phi_m)
    big_s = kc * sm - ks * cm  # K sin m (phi - phi_m)
    return c * big_c + order * s * big_s, s * big_c - order * c * big_s


#: Columns of the kernels' ``extra`` section for a multipole: centre, m, K cos m phi_m, K sin m phi_m,
#: N = A (2 x 2, row-major; g -= N alpha).
EXTRA_COLUMNS = ("center_x", "center_y", "m", "kc", "ks", "n00", "n01", "n10", "n11")


def _pack(kw: Mapping[str, np.ndarray], affine: np.ndarray) -> np.ndarray:
    n = len(kw["a_m"])
    m = kw["m"]
    k = kw["a_m"] / (1 - m * m)
    cols = [
        np.full(n, 1.0),
        kw.get("center_x", np.zeros(n)),
        kw.get("center_y", np.zeros(n)),
        m,
        k * np.cos(m * kw["phi_m"]),
        k * np.sin(m * kw["phi_m"]),
        *(affine[:, i, j] for i in (0, 1) for j in (0, 1)),
    ]
    return np.stack(cols, -1)


@inline
def _unit(dx: float, dy: float) -> tuple[float, float]:
    """(cos phi, sin phi) of the offset (dx, dy); (1, 0) at the centre (lenstronomy's phi = 0 there)."""
    r2 = dx * dx + dy * dy
    inv = F32(1.0) / math.sqrt(r2) if r2 > F32(0.0) else F32(0.0)
    return (dx * inv if r2 > F32(0.0) else F32(1.0)), dy * inv


@inline
def _alpha(c: float, s: float, cm: float, sm: float, kc: float, ks: float, fm: float) -> tuple[float, float]:
    """The deflection at a ray with (c, s) = (cos phi, sin phi) and (cm, sm) = (cos m phi, sin m phi)."""
    big_c = kc * cm + ks * sm  # K cos m (phi - phi_m)
    big_s = kc * sm - ks * cm  # K sin m (phi - phi_m)
    return c * big_c + fm * s * big_s, s * big_c - fm * c * big_s


@inline
def kernel_row(cols: np.ndarray, y: float, x32: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> None:
    """g -= N alpha for the rays (x32[j], y) of one multipole (``cols``: flag, ``EXTRA_COLUMNS``), float32.

    The columns are read into scalars first and each order has its own straight-line loop (closed forms for
    m = 3, 4), so that LLVM vectorises it.
    """
    n = x32.shape[0]
    cx, dy = F32(cols[1]), F32(y) - F32(cols[2])
    order = int(cols[3])
    fm, kc, ks = F32(cols[3]), F32(cols[4]), F32(cols[5])
    n00, n01, n10, n11 = F32(cols[6]), F32(cols[7]), F32(cols[8]), F32(cols[9])
    if order == 3:
        for j in range(n):
            c, s = _unit(x32[j] - cx, dy)
            cm, sm = c * (F32(4.0) * c * c - F32(3.0)), s * (F32(3.0) - F32(4.0) * s * s)
            ax, ay = _alpha(c, s, cm, sm, kc, ks, fm)
            gx[j] = gx[j] - (n00 * ax + n01 * ay)
            gy[j] = gy[j] - (n10 * ax + n11 * ay)
    elif order == 4:
        for j in range(n):
            c, s = _unit(x32[j] - cx, dy)
            c2, s2 = c * c - s * s, F32(2.0) * c * s
            ax, ay = _alpha(c, s, c2 * c2 - s2 * s2, F32(2.0) * c2 * s2, kc, ks, fm)
            gx[j] = gx[j] - (n00 * ax + n01 * ay)
            gy[j] = gy[j] - (n10 * ax + n11 * ay)
    else:
        for j in range(n):
            c, s = _unit(x32[j] - cx, dy)
            cm, sm = c, s
            for _ in range(order - 1):
                cm, sm = cm * c - sm * s, cm * s + sm * c
            ax, ay = _alpha(c, s, cm, sm, kc, ks, fm)
            gx[j] = gx[j] - (n00 * ax + n01 * ay)
            gy[j] = gy[j] - (n10 * ax + n11 * ay)


def _check(kwargs: Mapping, key_prefix: str) -> dict[str, np.ndarray]:
    out = checked_params(PROFILE, kwargs, key_prefix)
    m = out["m"]
    if np.any(m != np.round(m)) or np.any(m < 2):
        raise ConfigError(f"{key_prefix}.m = {kwargs['m']!r} must be an integer >= 2 (e.g. 3 or 4).")
    return out


PROFILE = LensProfile(
    name="MULTIPOLE",
    params={
        "m": "order (integer >= 2)",
        "a_m": "strength, arcsec (kappa = a_m / (2 r) cos m (phi - phi_m))",
        "phi_m": "orientation, rad",
        "center_x": "arcsec",
        "center_y": "arcsec",
        "r_E": "normalising radius (m = 1 only; unused)",
    },
    alpha=alpha_multipole,
    role="perturbation",
    optional=("center_x", "center_y", "r_E"),
    strength="a_m",
    check=_check,
    kernel=KernelPacking("extra", 1.0, EXTRA_COLUMNS, _pack),
    extra={"kernel_row": kernel_row},
)

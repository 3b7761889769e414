"""SIE: singular isothermal ellipsoid (lenstronomy 'SIE' = its NIE with a core s_scale = 1e-10 arcsec,
Keeton & Kochanek 1998), a macro-lens profile.

``theta_E`` is the product-averaged (circularised) Einstein radius; the major-axis critical radius is
``b = theta_E sqrt(q)``. Ellipticity convention: ``lensml.sim.profiles.base``.

Fast paths: the torch grid path and the kernel evaluate two per-ray terms in the frame of the major axis,
``u = atan(k x' / (psi + s))``, ``v = atanh(k y' / (psi + q^2 s))`` (series for k = sqrt(1 - q^2) < 1e-3),
and take them back to the sky with the per-sample matrix ``R(-phi) b / k`` (``sie_terms``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lensml.sim.profiles.base import (
    MAX_ECC,
    KernelPacking,
    LensProfile,
    Param,
    check_ellipse,
    checked_params,
    param,
    phi_q_terms,
    shifted,
)

SIE_S_SCALE = 1e-10  # lenstronomy's SIE core (arcsec)
#: Below this k = sqrt(1 - q^2) the SIE terms use their series (atan(k z) / k -> z (1 - (k z)^2 / 3), ...).
SIE_SMALL_K = 1e-3


def alpha_sie(
    x: Tensor, y: Tensor, theta_E: Param, e1: Param, e2: Param, center_x: Param = 0.0, center_y: Param = 0.0
):
    """Singular isothermal ellipsoid (lenstronomy 'SIE' = NIE with s_scale = 1e-10 arcsec).

    Written with in-place operations (about half the passes over the rays of the naive form): per-sample
    factors are computed on the parameters, b atan(k z) / k as atan2(k x', psi + s) * (b / k).
    """
    cos, sin, q, k2 = phi_q_terms(param(e1, x), param(e2, x))
    dx, dy = shifted(x, y, center_x, center_y)
    xr = torch.addcmul(dx * cos, dy, sin)  # frame of the major axis
    yr = torch.addcmul(dy * cos, dx, -sin)
    b = param(theta_E, x) * torch.sqrt(q)
    s = SIE_S_SCALE / torch.sqrt(q)
    q2 = q * q
    psi = torch.addcmul(q2 * (s * s), xr * xr, q2).addcmul_(yr, yr).sqrt_()
    den_x = psi + s
    den_y = psi.add_(q2 * s)
    k = torch.sqrt(k2)
    small = k < 1e-3  # atan(k z) / k -> z (1 - (k z)^2 / 3), atanh(k z) / k -> z (1 + (k z)^2 / 3)
    k_safe = torch.where(small, torch.ones_like(k), k)
    b_over_k = b / k_safe
    series = None
    if bool(small.any()):  # the per-element result does not depend on this branch
        z1, z2 = xr / den_x, yr / den_y
        kz1, kz2 = k * z1, k * z2
        series = (z1 * (1 - kz1 * kz1 / 3), z2 * (1 + kz2 * kz2 / 3))
    # atan(k xr / den_x) = atan2(k xr, den_x) as den_x > 0 (atan2 is the faster kernel on CPU)
    ax = torch.atan2(xr.mul_(k_safe), den_x).mul_(b_over_k)
    ay = yr.mul_(k_safe).div_(den_y).atanh_().mul_(b_over_k)
    if series is not None:
        ax = torch.where(small, b * series[0], ax)
        ay = torch.where(small, b * series[1], ay)
    out_x = torch.addcmul(ax * cos, ay, -sin)  # back to the sky frame
    out_y = ay.mul_(cos).addcmul_(ax, sin)
    return out_x, out_y


@dataclass(frozen=True)
class SieTerms:
    """Per-sample SIE constants ((R,) float64 arrays; ``rot`` (R, 2, 2)).

    With x' = x0 + cos x + sin y and y' = y0 - sin x + cos y (the frame of the major axis):
    ``xq = q x'``, ``yr = y'``, ``psi = sqrt(q^2 s^2 + xq^2 + yr^2)``;
    ``u = atan(k_q xq / (psi + s))``, ``v = atanh(k yr / (psi + q^2 s))`` (``k_q = k / q``); where ``small``,
    ``u = z1 (1 - (k z1)^2 / 3)``, ``v = z2 (1 + (k z2)^2 / 3)`` with ``z1 = xq / q / (psi + s)``,
    ``z2 = yr / (psi + q^2 s)``. The deflection is ``rot @ (u, v)``.
    """

    q: np.ndarray
    k: np.ndarray
    s: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    cos: np.ndarray
    sin: np.ndarray
    small: np.ndarray
    rot: np.ndarray

    @property
    def k_safe(self) -> np.ndarray:
        return np.where(self.small, 1.0, self.k)


def sie_terms(kw: Mapping[str, np.ndarray]) -> SieTerms:
    """The SIE constants of ``kw`` (theta_E, e1, e2, center_x, center_y as (R,) arrays), lenstronomy's SIE."""
    e1, e2 = kw["e1"], kw["e2"]
    phi = np.arctan2(e2, e1) / 2
    c = np.minimum(np.hypot(e1, e2), MAX_ECC)
    q = (1 - c) / (1 + c)
    k = np.sqrt(4 * c / (1 + c) ** 2)  # sqrt(1 - q^2) without cancellation
    cos, sin = np.cos(phi), np.sin(phi)
    cx = np.broadcast_to(kw.get("center_x", 0.0), q.shape)
    cy = np.broadcast_to(kw.get("center_y", 0.0), q.shape)
    b = kw["theta_E"] * np.sqrt(q)  # major-axis critical radius
    small = k < SIE_SMALL_K
    scale = b / np.where(small, 1.0, k)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2) * scale[:, None, None]
    return SieTerms(
        q=q,
        k=k,
        s=SIE_S_SCALE / np.sqrt(q),
        x0=-(cx * cos + cy * sin),
        y0=cx * sin - cy * cos,
        cos=cos,
        sin=sin,
        small=small,
        rot=rot,
    )


#: The kernel's ``macro`` section: a flag, the frame of the major axis (xq = q x', yr = y' as affine
#: functions of the ray: xq = xq0 + xq_x x + xq_y y, ...), five columns of the profile's own, C = A rot
#: (2 x 2, row-major; g -= C (u, v)) and q. ``MACRO_OWN`` are the slots of the profile's five columns.
MACRO_COLUMNS = (
    "xq0", "xq_x", "xq_y", "yr0", "yr_x", "yr_y", "own0", "own1", "own2", "own3", "own4",
    "c00", "c01", "c10", "c11", "q",
)  # fmt: skip
MACRO_OWN = 5


def macro_columns(t: SieTerms, affine: np.ndarray, rot: np.ndarray, own: list[np.ndarray]) -> np.ndarray:
    """The ``MACRO_COLUMNS`` (after the flag) of elliptical lenses with constants ``t``, ``own`` columns."""
    q, cos, sin = t.q, t.cos, t.sin
    coef = np.einsum("bij,bjk->bik", affine, rot)
    frame = [q * t.x0, q * cos, q * sin, t.y0, -sin, cos]
    c_cols = [coef[:, i, j] for i in (0, 1) for j in (0, 1)]
    return np.stack([*frame, *own, *c_cols, q], -1)


#: The SIE's own macro columns: q^2 s^2, s, q^2 s, k / q, k (``SieTerms``).
SIE_COLUMNS = ("qqss", "s", "q2s", "k_over_q", "k")


def _pack(kw: Mapping[str, np.ndarray], affine: np.ndarray) -> np.ndarray:
    """Flag (1, or 2 where the series is used) and ``MACRO_COLUMNS`` with the ``SIE_COLUMNS``."""
    t = sie_terms(kw)
    q, s = t.q, t.s
    own = [q * q * s * s, s, q * q * s, t.k_safe / q, t.k]
    return np.concatenate([np.where(t.small, 2.0, 1.0)[:, None], macro_columns(t, affine, t.rot, own)], -1)


def check_elliptical(profile: LensProfile, kwargs: Mapping, key_prefix: str) -> dict[str, np.ndarray]:
    """The parameter checks of an elliptical macro lens (theta_E > 0, q in [Q_MIN, 1])."""
    out = checked_params(profile, kwargs, key_prefix)
    check_ellipse(out, key_prefix)
    return out


PROFILE = LensProfile(
    name="SIE",
    params={
        "theta_E": "Einstein radius (product-averaged), arcsec",
        "e1": "complex ellipticity modulus, (1 - q) / (1 + q) cos 2 phi",
        "e2": "complex ellipticity modulus, (1 - q) / (1 + q) sin 2 phi",
        "center_x": "arcsec",
        "center_y": "arcsec",
    },
    alpha=alpha_sie,
    role="macro",
    strength="theta_E",
    check=lambda kw, key: check_elliptical(PROFILE, kw, key),
    torch_eval="lane_aligned",
    grid_eval="sie_terms",
    kernel=KernelPacking("macro", 1.0, SIE_COLUMNS, _pack),
)

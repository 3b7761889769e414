"""Per-sample coefficients of ray shooting on the regular image grid (numpy, float64), for both fast paths.

The torch path (``torch_grid``) and the compiled CPU kernel (``cpu_rays``) evaluate the same arithmetic:
source-grid coordinates ``g = A (theta - alpha(theta)) + c`` of the rays of a shared regular grid, with ``A``,
``c`` the source grid's placement (``affine``, ``offset``). What does not depend on the ray is computed here,
once per sample, in float64:

- ``fold_shear``: the external shear is linear in theta, so it goes into ``A`` and ``c`` (no pass over rays).
- ``sie_terms``: lenstronomy's SIE (NIE with s = 1e-10 arcsec) as two per-ray terms
  ``u = atan(k x' / (psi + s))``, ``v = atanh(k y' / (psi + q^2 s))`` (series for k < 1e-3) in the frame of
  the major axis, and the 2 x 2 matrix ``R(-phi) b / k`` that takes (u, v) back to a sky deflection.
- ``tau_key``: the key of the universal NFW / TNFW tables (r_trunc / Rs).

Conventions as ``torch_deflections`` (lenstronomy's), angles in arcsec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lensml.sim.backends.torch_deflections import _MAX_ECC, _SIE_S_SCALE

#: Keyword that sets a profile's strength: samples where it is 0 contribute exactly 0 and are skipped.
STRENGTH = {"SIS": "theta_E", "SIE": "theta_E", "EPL": "theta_E", "NFW": "alpha_Rs", "TNFW": "alpha_Rs"}
#: Below this k = sqrt(1 - q^2) the SIE terms use their series (atan(k z) / k -> z (1 - (k z)^2 / 3), ...).
SIE_SMALL_K = 1e-3


def as_numpy(v: object, b: int) -> np.ndarray:
    """A float or (B,) array / tensor as a float64 (B,) array."""
    if hasattr(v, "detach"):
        v = v.detach().to("cpu").double().numpy()
    a = np.asarray(v, dtype=np.float64)
    return np.broadcast_to(a, (b,)).astype(np.float64) if a.ndim == 0 else a.astype(np.float64)


def numpy_kwargs(
    lens_model_list: Sequence[str], kwargs_lens: Sequence[Mapping[str, object]], b: int
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(profile, kwargs as float64 (B,) arrays) for each profile."""
    pairs = zip(lens_model_list, kwargs_lens)
    return [(name, {k: as_numpy(v, b) for k, v in kw.items()}) for name, kw in pairs]


def fold_shear(
    affine: np.ndarray, offset: np.ndarray, profiles: Sequence[tuple[str, dict[str, np.ndarray]]]
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, dict[str, np.ndarray]]]]:
    """The linear part ``g = M theta + c'`` (shear folded in) and the profiles left to evaluate per ray.

    alpha_shear = G (theta - theta_0), so ``A (theta - alpha) + c = A (I - G) theta + A G theta_0 + c``.
    Returns ``M`` (B, 2, 2), ``c'`` (B, 2) and the non-shear profiles, in order.
    """
    b = affine.shape[0]
    m, c = affine.astype(np.float64).copy(), offset.astype(np.float64).copy()
    rest = []
    for name, kw in profiles:
        if name != "SHEAR":
            rest.append((name, kw))
            continue
        g1, g2 = kw["gamma1"], kw["gamma2"]
        shear = np.stack([np.stack([g1, g2], -1), np.stack([g2, -g1], -1)], -2)
        a_g = np.einsum("bij,bjk->bik", affine, shear)
        m -= a_g
        theta0 = np.stack([kw.get("ra_0", np.zeros(b)), kw.get("dec_0", np.zeros(b))], -1)
        c += np.einsum("bij,bj->bi", a_g, theta0)
    return m, c, rest


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
    c = np.minimum(np.hypot(e1, e2), _MAX_ECC)
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
        s=_SIE_S_SCALE / np.sqrt(q),
        x0=-(cx * cos + cy * sin),
        y0=cx * sin - cy * cos,
        cos=cos,
        sin=sin,
        small=small,
        rot=rot,
    )


def tau_key(kw: Mapping[str, np.ndarray]) -> np.ndarray:
    """r_trunc / Rs per sample, rounded to 12 significant digits (0 for NFW): the radial table's key."""
    if "r_trunc" not in kw:
        return np.zeros(np.shape(kw["Rs"]))
    tau = kw["r_trunc"] / np.maximum(kw["Rs"], 1e-7)
    return np.array([float(f"{t:.12g}") for t in tau])


def active_rows(name: str, kw: Mapping[str, np.ndarray], b: int) -> np.ndarray:
    """Indices of the samples where profile ``name`` has a non-zero strength (all if it has none)."""
    strength = kw.get(STRENGTH.get(name, ""))
    return np.arange(b) if strength is None else np.flatnonzero(strength != 0)

"""Per-sample coefficients of ray shooting on the regular image grid (numpy, float64), for both fast paths.

The torch path (``torch_grid``) and the compiled CPU kernel (``cpu_rays``) evaluate the same arithmetic:
source-grid coordinates ``g = A (theta - alpha(theta)) + c`` of the rays of a shared regular grid, with ``A``,
``c`` the source grid's placement (``affine``, ``offset``). What does not depend on the ray is computed here,
once per sample, in float64:

- ``fold_shear``: the external shear is linear in theta, so it goes into ``A`` and ``c`` (no pass over rays).
- ``sie_terms`` (``lensml.sim.profiles.sie``): lenstronomy's SIE as two per-ray terms and the 2 x 2 matrix
  that takes them back to a sky deflection.
- ``tau_key``: the key of the universal NFW / TNFW tables (r_trunc / Rs).

Conventions as ``lensml.sim.profiles`` (lenstronomy's), angles in arcsec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lensml.sim.profiles import PROFILES, get_profile
from lensml.sim.profiles.sie import SIE_SMALL_K, SieTerms, sie_terms  # noqa: F401 - the SIE's constants

#: Keyword that sets a profile's strength: samples where it is 0 contribute exactly 0 and are skipped.
STRENGTH: dict[str, str] = {name: p.strength for name, p in PROFILES.items() if p.strength}


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
        if get_profile(name).role != "shear":
            rest.append((name, kw))
            continue
        g1, g2 = kw["gamma1"], kw["gamma2"]
        shear = np.stack([np.stack([g1, g2], -1), np.stack([g2, -g1], -1)], -2)
        a_g = np.einsum("bij,bjk->bik", affine, shear)
        m -= a_g
        theta0 = np.stack([kw.get("ra_0", np.zeros(b)), kw.get("dec_0", np.zeros(b))], -1)
        c += np.einsum("bij,bj->bi", a_g, theta0)
    return m, c, rest


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

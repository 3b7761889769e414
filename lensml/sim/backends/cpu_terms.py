"""The per-sample columns the compiled CPU kernels read (``cpu_rays``), packed from lenstronomy kwargs.

``ray_terms`` turns a lens list (batch-first lenstronomy kwargs, any number of ``SHEAR``, at most one macro
``SIE`` / ``EPL`` and one radial ``SIS`` / ``NFW`` / ``TNFW``) and a source placement into float64 tables
of per-sample constants (``grid_terms`` computes them): the linear part with the shear folded in, the macro
lens's terms, the subhalo's. NFW / TNFW deflections come from ``radial_table``: |alpha|(R) / R at float32
values of (R / Rs)^2 chosen so that the kernel finds its node from the bit pattern of (R / Rs)^2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lensml.sim.backends.grid_terms import (
    SieTerms,
    active_rows,
    fold_shear,
    numpy_kwargs,
    sie_terms,
    tau_key,
)

#: Radial table: nodes at float32 values of (R / Rs)^2 whose low ``TABLE_SHIFT`` mantissa bits are 0, i.e.
#: 2^(23 - 15) = 256 nodes per octave of (R / Rs)^2 (relative step 2^-8); linear interpolation in (R / Rs)^2
#: between nodes (relative error ~2e-6 of h), constant outside [1e-6, 1e8] Rs (the range of the torch table).
TABLE_SHIFT = 15
_TABLE_X_RANGE = (1e-6, 1e8)
_TABLES: dict[tuple[str, float], np.ndarray] = {}
RADIAL_PROFILES = ("NFW", "TNFW")


def _table_bits() -> tuple[int, int]:
    lo, hi = (np.array([x * x for x in _TABLE_X_RANGE], dtype=np.float32).view(np.int32) >> TABLE_SHIFT)
    return int(lo), int(hi)


def radial_table(name: str, tau: float) -> np.ndarray:
    """h(x) = |alpha|(R) / R of profile ``name`` (Rs = 1, alpha_Rs = 1, r_trunc = tau) at the table nodes.

    Returns (2, K) float32: row 0 is h at the nodes, row 1 the difference to the next node. Built in float64
    from ``torch_deflections`` (lenstronomy's conventions and small-radius clamps, tested against
    lenstronomy); cached per (name, tau).
    """
    key = (name, float(tau))
    if key not in _TABLES:
        import torch

        from lensml.sim.backends.torch_lens import PROFILES

        lo, hi = _table_bits()
        q2 = (np.arange(lo, hi + 1, dtype=np.int64) << TABLE_SHIFT).astype(np.int32).view(np.float32)
        x = torch.as_tensor(np.sqrt(q2.astype(np.float64)))
        kw = {"Rs": 1.0, "alpha_Rs": 1.0} | ({"r_trunc": float(tau)} if name == "TNFW" else {})
        ax, _ = PROFILES[name](x, torch.zeros_like(x), **kw)
        h = (ax / x).numpy()
        table = np.stack([h, np.append(np.diff(h), 0.0)]).astype(np.float32)
        table.setflags(write=False)
        _TABLES[key] = table
    return _TABLES[key]


def _macro_columns(
    flag: np.ndarray, t: SieTerms, affine: np.ndarray, rot: np.ndarray, rest: list[np.ndarray]
) -> np.ndarray:
    """The kernel's ``macro`` columns: flag, the frame of the major axis (xq = q x', yr = y' as affine
    functions of the ray), the profile's five constants ``rest``, C = A rot (2 x 2), and q."""
    q, cos, sin = t.q, t.cos, t.sin
    coef = np.einsum("bij,bjk->bik", affine, rot)
    frame = [q * t.x0, q * cos, q * sin, t.y0, -sin, cos]
    c_cols = [coef[:, i, j] for i in (0, 1) for j in (0, 1)]
    return np.stack([flag, *frame, *rest, *c_cols, q], -1)


def _sie_columns(kw: Mapping[str, np.ndarray], affine: np.ndarray) -> np.ndarray:
    """SIE lenses (kwargs as (R,) arrays) placed by ``affine`` (R, 2, 2): q^2 s^2, s, q^2 s, k / q, k;
    g -= C (u, v) with C = A R(-phi) b / k (``grid_terms.SieTerms``)."""
    t = sie_terms(kw)
    q, s = t.q, t.s
    rest = [q * q * s * s, s, q * q * s, t.k_safe / q, t.k]
    return _macro_columns(np.where(t.small, 2.0, 1.0), t, affine, t.rot, rest)


def _epl_columns(kw: Mapping[str, np.ndarray], affine: np.ndarray) -> np.ndarray:
    """EPL lenses: f, t = gamma - 1, series terms (float32 precision), 2 b^t / (1 + q), 0; C = A R(-phi)."""
    import torch

    from lensml.sim.backends.torch_deflections import _epl_series_terms

    t = sie_terms(kw)  # the frame of the major axis, q and phi: as the SIE
    q, cos, sin = t.q, t.cos, t.sin
    f = (1 - q) / (1 + q)
    terms = np.array([_epl_series_terms(float(e), torch.float32) for e in f], dtype=float)
    slope = kw["gamma"] - 1
    amp = 2 / (1 + q) * (kw["theta_E"] * np.sqrt(q)) ** slope
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # back to the sky
    return _macro_columns(np.full_like(q, 3.0), t, affine, rot, [f, slope, terms, amp, np.zeros_like(q)])


def supports(lens_model_list: Sequence[str]) -> bool:
    """Whether the kernel renders this lens list (otherwise use the torch path)."""
    names = [n for n in lens_model_list if n != "SHEAR"]
    macro = [n for n in names if n in ("SIE", "EPL")]
    radial = [n for n in names if n in ("SIS", *RADIAL_PROFILES)]
    return len(macro) <= 1 and len(radial) <= 1 and len(macro) + len(radial) == len(names)


@dataclass(frozen=True)
class RayTerms:
    """The per-sample columns and tables the kernels read (see ``_rays_kernel``)."""

    lin: np.ndarray
    sie: np.ndarray
    sub: np.ndarray
    tables: np.ndarray
    table_lo: int

    def args(self) -> tuple:
        return self.lin, self.sie, self.sub, self.tables, self.table_lo


def ray_terms(
    lens_model_list: Sequence[str],
    kwargs_lens: Sequence[Mapping[str, object]],
    affine: np.ndarray,
    offset: np.ndarray,
) -> RayTerms | None:
    """The kernels' per-sample terms of a lens list (batch-first lenstronomy kwargs) and a source placement
    (``affine`` (B, 2, 2), ``offset`` (B, 2)), or None when the lens list is not ``supports``-ed."""
    if not supports(lens_model_list):
        return None
    b = affine.shape[0]
    m, c, todo = fold_shear(affine, offset, numpy_kwargs(lens_model_list, kwargs_lens, b))
    lin = np.stack([c[:, 0], m[:, 0, 0], m[:, 0, 1], c[:, 1], m[:, 1, 0], m[:, 1, 1]], -1)
    sie = np.zeros((b, 17))
    sub = np.zeros((b, 9))
    tables = [np.zeros((2, 1), np.float32)]
    taus: list[float] = []
    for name, kw in todo:
        rows = active_rows(name, kw, b)
        if rows.size == 0:
            continue
        kw = {k: v[rows] for k, v in kw.items()}
        a_rows = affine[rows].astype(np.float64)
        if name in ("SIE", "EPL"):
            sie[rows] = (_sie_columns if name == "SIE" else _epl_columns)(kw, a_rows)
            continue
        cx = kw.get("center_x", np.zeros(rows.size))
        cy = kw.get("center_y", np.zeros(rows.size))
        if name == "SIS":
            kind, strength, inv_rs2, row = 1.0, kw["theta_E"], np.zeros(rows.size), np.zeros(rows.size)
        else:
            rs = np.maximum(kw["Rs"], 1e-7)  # lenstronomy: Rs >= 1e-7 arcsec
            kind, strength, inv_rs2 = 2.0, kw["alpha_Rs"] / rs, 1.0 / rs**2
            row = np.zeros(rows.size)
            for tau in np.unique(tau_key(kw)):
                if tau not in taus:
                    taus.append(tau)
                    tables.append(radial_table(name, tau))
                row[tau_key(kw) == tau] = 1 + taus.index(tau)
        nmat = a_rows * strength[:, None, None]
        n_cols = [nmat[:, i, j] for i in (0, 1) for j in (0, 1)]
        sub[rows] = np.stack([np.full(rows.size, kind), cx, cy, inv_rs2, row, *n_cols], -1)
    lo, hi = _table_bits()
    width = hi - lo + 1 if taus else 1
    stack = np.zeros((len(tables), 2, width), np.float32)
    for i, tab in enumerate(tables[1:], start=1):
        stack[i] = tab
    return RayTerms(lin, sie, sub, stack, lo)

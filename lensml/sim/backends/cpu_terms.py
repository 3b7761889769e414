"""The per-sample columns the compiled CPU kernels read (``cpu_rays``), packed from lenstronomy kwargs.

``ray_terms`` turns a lens list (batch-first lenstronomy kwargs) and a source placement into float64 tables
of per-sample constants, one section per ``KernelPacking.slot`` of the profiles (``lensml.sim.profiles``):
the linear part with the shear folded in (``grid_terms.fold_shear``), the macro lens's columns, the
subhalo's. Each profile packs its own *named* columns (``KernelPacking.columns``); the kernel reads them by
name (``column``). NFW / TNFW deflections come from ``radial_table``: |alpha|(R) / R at float32 values of
(R / Rs)^2 chosen so that the kernel finds its node from the bit pattern of (R / Rs)^2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lensml.sim.backends.grid_terms import active_rows, fold_shear, numpy_kwargs, tau_key
from lensml.sim.profiles import PROFILES
from lensml.sim.profiles.sie import MACRO_COLUMNS
from lensml.sim.profiles.sis import SUB_COLUMNS

#: Profiles each section of the per-sample tables holds at most (``base.KERNEL_SLOTS``).
#: ``extra`` holds additive terms such as the m = 3 and m = 4 multipoles.
SLOT_CAPACITY: dict[str, int] = {"linear": 10**9, "macro": 1, "sub": 1, "extra": 4}
#: Widths of the ``macro`` and ``sub`` tables: the flag, then the section's columns.
MACRO_WIDTH, SUB_WIDTH = 1 + len(MACRO_COLUMNS), 1 + len(SUB_COLUMNS)
#: Width of one entry of the ``extra`` section: the flag, then the widest extra profile's columns.
EXTRA_WIDTH = 1 + max(
    (len(p.kernel.columns) for p in PROFILES.values() if p.kernel and p.kernel.slot == "extra"), default=0
)


def column(profile: str, name: str) -> int:
    """Index of profile ``profile``'s column ``name`` in its section's table (the flag is column 0).

    The ``macro`` section starts with the frame columns (``sie.MACRO_COLUMNS``); a profile's own columns
    take the ``own*`` slots, in the order of its ``KernelPacking.columns``.
    """
    packing = PROFILES[profile].kernel
    if packing.slot == "macro" and name in MACRO_COLUMNS:
        return 1 + MACRO_COLUMNS.index(name)
    if packing.slot == "macro":
        return 1 + MACRO_COLUMNS.index("own0") + packing.columns.index(name)
    return 1 + packing.columns.index(name)


#: Radial table: nodes at float32 values of (R / Rs)^2 whose low ``TABLE_SHIFT`` mantissa bits are 0, i.e.
#: 2^(23 - 15) = 256 nodes per octave of (R / Rs)^2 (relative step 2^-8); linear interpolation in (R / Rs)^2
#: between nodes (relative error ~2e-6 of h), constant outside [1e-6, 1e8] Rs (the range of the torch table).
TABLE_SHIFT = 15
_TABLE_X_RANGE = (1e-6, 1e8)
_TABLES: dict[tuple[str, float], np.ndarray] = {}
#: at most this many tables are kept (tidal truncation: ~64 per decade of tau, lensml.sim.subhalo)
_TABLES_MAX = 512


def _table_bits() -> tuple[int, int]:
    lo, hi = (np.array([x * x for x in _TABLE_X_RANGE], dtype=np.float32).view(np.int32) >> TABLE_SHIFT)
    return int(lo), int(hi)


def radial_table(name: str, tau: float) -> np.ndarray:
    """h(x) = |alpha|(R) / R of profile ``name`` (Rs = 1, alpha_Rs = 1, r_trunc = tau) at the table nodes.

    Returns (2, K) float32: row 0 is h at the nodes, row 1 the difference to the next node. Built in float64
    from the profile's torch deflection (lenstronomy's conventions and small-radius clamps, tested against
    lenstronomy); cached per (name, tau).
    """
    key = (name, float(tau))
    if key not in _TABLES:
        if len(_TABLES) >= _TABLES_MAX:  # bounded memory (~190 kB a table): start again
            _TABLES.clear()
        import torch

        lo, hi = _table_bits()
        q2 = (np.arange(lo, hi + 1, dtype=np.int64) << TABLE_SHIFT).astype(np.int32).view(np.float32)
        x = torch.as_tensor(np.sqrt(q2.astype(np.float64)))
        kw = {"Rs": 1.0, "alpha_Rs": 1.0} | PROFILES[name].radial_kwargs(tau)
        ax, _ = PROFILES[name].alpha(x, torch.zeros_like(x), **kw)
        h = (ax / x).numpy()
        table = np.stack([h, np.append(np.diff(h), 0.0)]).astype(np.float32)
        table.setflags(write=False)
        _TABLES[key] = table
    return _TABLES[key]


def supports(lens_model_list: Sequence[str]) -> bool:
    """Whether the kernel renders this lens list (otherwise use the torch path)."""
    return unsupported_reason(lens_model_list) is None


def unsupported_reason(lens_model_list: Sequence[str]) -> str | None:
    """Why the kernel cannot render this lens list: a profile without kernel packing, or more profiles in a
    section than it has room for (``SLOT_CAPACITY``); None if it can."""
    counts: dict[str, int] = {}
    for name in lens_model_list:
        profile = PROFILES.get(name)
        if profile is None or profile.kernel is None:
            return f"lens profile {name!r} has no compiled-kernel packing"
        counts[profile.kernel.slot] = counts.get(profile.kernel.slot, 0) + 1
    for slot, n in counts.items():
        if n > SLOT_CAPACITY[slot]:
            return f"{n} lens profiles for the kernel's {slot!r} section (room for {SLOT_CAPACITY[slot]})"
    return None


@dataclass(frozen=True)
class RayTerms:
    """The per-sample columns and tables the kernels read (see ``_rays_kernel``)."""

    lin: np.ndarray
    sie: np.ndarray
    sub: np.ndarray
    tables: np.ndarray
    table_lo: int
    extra: np.ndarray  # (B, SLOT_CAPACITY["extra"], EXTRA_WIDTH): flag, then the profile's columns

    def args(self) -> tuple:
        return self.lin, self.sie, self.sub, self.extra, self.tables, self.table_lo


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
    sie = np.zeros((b, MACRO_WIDTH))
    sub = np.zeros((b, SUB_WIDTH))
    extra = np.zeros((b, SLOT_CAPACITY["extra"], EXTRA_WIDTH))
    n_extra = 0
    tables = [np.zeros((2, 1), np.float32)]
    taus: list[float] = []
    for name, kw in todo:
        rows = active_rows(name, kw, b)
        if rows.size == 0:
            continue
        kw = {k: v[rows] for k, v in kw.items()}
        a_rows = affine[rows].astype(np.float64)
        profile = PROFILES[name]
        if profile.radial_kwargs is not None:  # tabulated radial profile: one table per r_trunc / Rs
            row = np.zeros(rows.size)
            for tau in np.unique(tau_key(kw)):
                if tau not in taus:
                    taus.append(tau)
                    tables.append(radial_table(name, tau))
                row[tau_key(kw) == tau] = 1 + taus.index(tau)
            cols = profile.kernel.pack(kw, a_rows, row)
        else:
            cols = profile.kernel.pack(kw, a_rows)
        if profile.kernel.slot == "extra":  # the k-th extra profile of the list takes entry k
            extra[rows, n_extra, : cols.shape[1]] = cols
            n_extra += 1
        else:
            (sie if profile.kernel.slot == "macro" else sub)[rows] = cols
    lo, hi = _table_bits()
    width = hi - lo + 1 if taus else 1
    stack = np.zeros((len(tables), 2, width), np.float32)
    for i, tab in enumerate(tables[1:], start=1):
        stack[i] = tab
    return RayTerms(lin, sie, sub, stack, lo, extra)

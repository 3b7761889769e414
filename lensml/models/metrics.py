"""Classification metrics of a split, overall and per subhalo-mass bin (torchmetrics functional API).

Conventions:
- ``probs`` = P(subhalo present) (softmax of the class-1 logit), ``labels`` in {0, 1}, ``mass_msun`` = 0 for
  negatives.
- Recall at a fixed false-positive rate: sensitivity at specificity >= 1 - FPR
  (``BinarySensitivityAtSpecificity``): ``recall_at_fpr5`` (FPR 5 %), ``recall_at_fpr1`` (FPR 1 %).
- Per mass bin: positives whose mass lies in ``[10**lo, 10**hi)`` against ALL negatives. Bins are given as
  log10 edges (default decades centred on 1e7, 1e8, ...: 6.5, 7.5, 8.5, 9.5, 10.5); a bin is named by its
  centre, e.g. ``"1e8"``. A bin with no positives (or no negatives) gets ``None`` metrics and ``n_pos``.
- The binning mass is any of ``MASS_KEYS`` (config ``metrics.mass_key``): M200 (``mass_msun``, default), the
  3D mass inside the truncation radius, or the projected mass within 1 kpc / 0.1 arcsec (the masses that
  gravitational imaging measures); the result records it as ``mass_key``. Projected masses are ~2 to >25
  times below M200 (more with strong tidal stripping or within 0.1"; docs/lens_physics.md): widen
  ``metrics.mass_edges_log10`` (e.g. start at 5.5 or lower) when binning by them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    binary_roc,
    binary_sensitivity_at_specificity,
)

DEFAULT_MASS_EDGES_LOG10: tuple[float, ...] = (6.5, 7.5, 8.5, 9.5, 10.5)
FPR_LEVELS: dict[str, float] = {"recall_at_fpr5": 0.05, "recall_at_fpr1": 0.01}
#: Sample masses the per-mass-bin metrics can be binned by (``lensml.sim.simulator`` sample keys).
MASS_KEYS: tuple[str, ...] = ("mass_msun", "m_trunc_msun", "m_proj_1kpc_msun", "m_proj_0p1arcsec_msun")


def bin_name(lo_log10: float, hi_log10: float) -> str:
    """Name of a mass bin by its log10 centre: (7.5, 8.5) -> ``"1e8"``."""
    return f"1e{(lo_log10 + hi_log10) / 2:g}"


def _ranking_metrics(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float | None]:
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.numel():
        return {"auc": None, **{k: None for k in FPR_LEVELS}}
    out: dict[str, float | None] = {"auc": float(binary_auroc(probs, labels))}
    for key, fpr in FPR_LEVELS.items():
        sens, _ = binary_sensitivity_at_specificity(probs, labels, min_specificity=1.0 - fpr)
        out[key] = float(sens)
    return out


def roc_points(probs: torch.Tensor, labels: torch.Tensor, max_points: int = 200) -> dict[str, list[float]]:
    """ROC curve (fpr, tpr, threshold), thinned to at most ``max_points`` points for storage and plots."""
    if labels.sum() == 0 or labels.sum() == labels.numel():
        return {"fpr": [], "tpr": [], "threshold": []}
    fpr, tpr, thr = binary_roc(probs, labels)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).round().astype(int))
    return {
        "fpr": fpr[keep].tolist(),
        "tpr": tpr[keep].tolist(),
        "threshold": thr[keep].clamp(max=1.0).tolist(),
    }


def split_metrics(
    probs: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    mass_msun: np.ndarray | torch.Tensor,
    mass_edges_log10: Sequence[float] = DEFAULT_MASS_EDGES_LOG10,
    threshold: float = 0.5,
    mass_key: str = "mass_msun",
) -> dict[str, Any]:
    """Accuracy, AUC, recall at FPR 5 % / 1 %, ROC curve, and the same per mass bin, as Python numbers.

    ``mass_msun``: each sample's binning mass (M_sun), the field named ``mass_key`` (recorded in the output).
    """
    p = torch.as_tensor(probs, dtype=torch.float32).flatten()
    y = torch.as_tensor(labels).long().flatten()
    m = torch.as_tensor(mass_msun, dtype=torch.float64).flatten()
    out: dict[str, Any] = {
        "n": int(y.numel()),
        "n_pos": int(y.sum()),
        "accuracy": float(binary_accuracy(p, y, threshold=threshold)) if y.numel() else None,
        **_ranking_metrics(p, y),
        "roc": roc_points(p, y),
    }
    neg = y == 0
    log_m = torch.where(m > 0, torch.log10(m.clamp(min=1e-30)), torch.full_like(m, -np.inf))
    per_bin: dict[str, Any] = {}
    for lo, hi in zip(mass_edges_log10[:-1], mass_edges_log10[1:]):
        pos = (y == 1) & (log_m >= lo) & (log_m < hi)
        sel = pos | neg
        entry: dict[str, Any] = {"lo_msun": 10.0**lo, "hi_msun": 10.0**hi, "n_pos": int(pos.sum())}
        entry.update(_ranking_metrics(p[sel], y[sel]))
        per_bin[bin_name(lo, hi)] = entry
    out["per_mass_bin"] = per_bin
    out["mass_key"] = mass_key
    return out


def flat_scalars(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """Scalar metrics of ``split_metrics`` as ``{prefix/key: value}`` (per-bin AUC: ``prefix/auc_1e8``)."""
    flat = {
        f"{prefix}/{k}": float(v)
        for k, v in metrics.items()
        if k in ("accuracy", "auc", *FPR_LEVELS) and v is not None
    }
    for name, entry in metrics.get("per_mass_bin", {}).items():
        if entry.get("auc") is not None:
            flat[f"{prefix}/auc_{name}"] = float(entry["auc"])
    return flat

"""The v2 ablations' section (study ``ablations_resnet``): the v2 detector trained on flux, flux + velocity,
flux + another sample's velocity and mask, velocity only, the mask only; what each tells (from intervals)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lensml.analysis import plots
from lensml.analysis.markdown import fmt_ci
from lensml.reporting.core import Report
from lensml.reporting.tables import detects, pair, paired_table, variants_table

VARIANTS = ("flux", "flux_velocity", "shuffled_velocity", "velocity_only", "mask_only")


def _pairing_reading(c: Mapping[str, Any]) -> str | None:
    """Paired vs shuffled velocity: does the velocity that belongs to the image add anything?"""
    comp = pair(c, "flux_velocity", "shuffled_velocity")
    if comp is None:
        return None
    lo, hi = comp["auc"]["ci"]
    if lo <= 0 <= hi:
        return (f"shuffled − paired velocity ΔAUC {fmt_ci(comp['auc'], True)}: the velocity map of the "
                "sample's own source adds nothing the detector uses over another sample's")
    better = "better" if lo > 0 else "worse"
    return (f"shuffled − paired velocity ΔAUC {fmt_ci(comp['auc'], True)}: the shuffled model is {better}, "
            "so the pairing matters to the detector (interval excludes 0)")


def _alone_reading(c: Mapping[str, Any], variant: str, what: str) -> str | None:
    """An input alone: above chance (AUC interval > 0.5) or not."""
    v = c["variants"].get(variant)
    if v is None:
        return None
    if detects(v["auc"]):
        return f"{what} alone detects above chance (AUC {fmt_ci(v['auc'])})"
    return f"{what} alone is at chance (AUC {fmt_ci(v['auc'])})"


def render(r: Report) -> None:
    s = r.s.get("ablations_resnet")
    if not s:
        return
    r.section("Ablations (v2) — what the detector uses", s, scale=True)
    conds = s["conditions"]
    variants = [v for v in VARIANTS if any(v in c["variants"] for c in conds.values())]
    r.add(variants_table(conds, variants) + "\n")
    r.add("Paired differences (identical test samples):\n")
    r.add(paired_table(conds) + "\n")
    lines = []
    for cname, c in conds.items():
        parts = [_pairing_reading(c), _alone_reading(c, "velocity_only", "the velocity map"),
                 _alone_reading(c, "mask_only", "the mask")]
        parts = [p for p in parts if p]
        if parts:
            lines.append(f"- `{cname}`: " + "; ".join(parts) + ".")
    if lines:
        r.add("**Reading** (the mask here is the observed one, a threshold of the noisy flux at 5 % of its "
              "peak and S/N 3: a mask-only detector above chance reads the arc's outline, which the flux "
              "carries too; it is a leak only if it beats the flux):\n")
        r.add("\n".join(lines) + "\n")
    r.fig("ablations_resnet.png", plots.metric_vs_condition(conds, list(conds)), "ablations_resnet")

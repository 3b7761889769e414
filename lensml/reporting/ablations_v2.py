"""The v2 ablations' section (study ``ablations_resnet``): the v2 detector trained on flux, flux + velocity,
flux + another sample's velocity and mask, velocity only, the mask only; what each tells (from intervals)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lensml.analysis import plots
from lensml.analysis.markdown import fmt_ci
from lensml.reporting.core import Report
from lensml.reporting.tables import detects, pair, paired_table, variants_table

VARIANTS = (
    "flux", "flux_velocity", "shuffled_velocity", "velocity_only", "mask_only", "flux_snr", "flux_mask",
)


def _pairing_reading(c: Mapping[str, Any]) -> str | None:
    """Paired vs shuffled velocity: does the velocity that belongs to the image add anything?"""
    comp = pair(c, "flux_velocity", "shuffled_velocity")
    if comp is None:
        return None
    lo, hi = comp["auc"]["ci"]
    if lo <= 0 <= hi:
        return (f"shuffled − paired velocity ΔAUC {fmt_ci(comp['auc'], True)}: the velocity map of the "
                "sample's own source adds nothing the detector uses over another sample's")
    d = fmt_ci(comp["auc"], True)
    if lo > 0:
        return (f"shuffled − paired velocity ΔAUC {d}: the detector does better with another sample's "
                "velocity map than with its own — its own velocity map costs it (a distraction, not a help)")
    return (f"shuffled − paired velocity ΔAUC {d}: the detector does worse with another sample's "
            "velocity map — it uses what its own velocity map tells")


def _alone_reading(c: Mapping[str, Any], variant: str, what: str) -> str | None:
    """An input alone: above chance (AUC interval > 0.5) or not."""
    v = c["variants"].get(variant)
    if v is None:
        return None
    if detects(v["auc"]):
        return f"{what} alone detects above chance (AUC {fmt_ci(v['auc'])})"
    return f"{what} alone is at chance (AUC {fmt_ci(v['auc'])})"


def _mask_vs_flux(c: Mapping[str, Any]) -> str | None:
    """The mask alone against the flux alone (paired): the mask holds nothing the flux lacks, so a mask-only
    detector that beats the flux-only one marks a learning limit of the flux network, not a leak."""
    comp = pair(c, "flux", "mask_only")
    if comp is None:
        return None
    lo, hi = comp["auc"]["ci"]
    if lo > 0:
        return (f"mask − flux ΔAUC {fmt_ci(comp['auc'], True)}: the mask alone beats the flux at the same "
                "budget — the flux network has not learned all that its input holds (a learning limit)")
    if hi < 0:
        return f"mask − flux ΔAUC {fmt_ci(comp['auc'], True)}: the flux tells more than its outline"
    d = fmt_ci(comp["auc"], True)
    return f"mask − flux ΔAUC {d}: the outline tells as much as the flux network learned"


def _seed_spread(head: Mapping[str, Any] | None, conds: Mapping[str, Any]) -> str:
    """The largest seed-to-seed AUC range of the headline's variants in the same test bins, as a clause."""
    if not head:
        return ""
    ranges = [(max(sv) - min(sv), cname, v) for cname in conds if cname in head["conditions"]
              for v, e in head["conditions"][cname]["variants"].items()
              if len(sv := e["auc"].get("seed_values") or []) > 1]
    if not ranges:
        return ""
    d, cname, v = max(ranges)
    return f" (the `headline_resnet` study's seeds differ by up to {d:.3f} in AUC: {v} at `{cname}`)"


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
                 _alone_reading(c, "mask_only", "the mask"), _mask_vs_flux(c)]
        parts = [p for p in parts if p]
        if parts:
            lines.append(f"- `{cname}`: " + "; ".join(parts) + ".")
    if lines:
        r.add("**Reading.** The mask is the observed one: the pixels whose noisy flux exceeds 5 % of its "
              "peak and 3 times its noise sigma. It is recomputed from the observed flux and the drawn peak "
              "S/N alone (`tests/sim/test_simulator.py::test_returned_mask_is_the_velocity_support`), and "
              "the peak S/N is drawn independently of the label, so the mask holds no information about the "
              "subhalo that the flux lacks: a mask-only detector above chance reads the arc's outline, and "
              "one above the flux-only detector shows how far the flux network is from using its input; "
              "neither is a leak.\n")
        r.add("\n".join(lines) + "\n")
        if len(s["scale"]["seeds"]) == 1:
            r.add("One network seed per variant: the intervals are over test samples only, not over network "
                  f"seeds{_seed_spread(r.s.get('headline_resnet'), conds)}.\n")
    r.fig("ablations_resnet.png", plots.metric_vs_condition(conds, list(conds)), "ablations_resnet")

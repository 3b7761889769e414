"""The control studies' sections (known macro model): ``control``, ``control_ablations``, ``mask_leak`` (v1:
the mask statistic; v2: the leak checks), ``control_observed_mask``; and the ablations (``ablations``, and
``control_ablations`` through the same renderer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lensml.analysis import plots
from lensml.analysis.markdown import fmt_ci, md_table
from lensml.reporting.core import Report
from lensml.reporting.tables import comparison_table, pair, paired_table, variants_table


def render_control(r: Report) -> None:
    s = r.s.get("control")
    if not s:
        return
    r.section("Control — known macro model (detectability limit of the architecture)", s, scale=True)
    r.add(comparison_table(s["conditions"], "baseline", "dual_stream"))
    conds = s["conditions"]
    r.fig("control.png", plots.metric_vs_condition(conds, list(conds)), "control study")


def render_control_observed(r: Report) -> None:
    s = r.s.get("control_observed_mask")
    if not s:
        return
    r.section("Control with the observed mask — is the control's velocity gain kinematic?", s, scale=True)
    r.add(comparison_table(s["conditions"], "baseline", "dual_stream"))
    for a, b in (("baseline", "dual_shuffled"), ("dual_shuffled", "dual_stream")):
        r.add(f"\n{b} − {a}:\n")
        r.add(comparison_table(s["conditions"], a, b))
    conds = s["conditions"]
    fig = plots.metric_vs_condition(conds, list(conds))
    r.fig("control_observed_mask.png", fig, "control, observed mask")


def render_mask_leak(r: Report) -> None:
    s = r.s.get("mask_leak")
    if not s:
        return
    if s["mask_leak"].get("version") == 2:
        _leak_checks(r, s)
        return
    r.section("Mask leak: what the velocity channel's zero region reveals", s)
    header = [
        "test condition",
        "AUC of the mask statistic [95% CI]",
        "negatives sharing one mask",
        "positives with a changed mask",
    ]
    rows = [
        [
            f"`{cname}`",
            fmt_ci(e["auc"]),
            f"{e['negatives_sharing_the_mask']:.3f}",
            f"{e['positives_with_changed_mask']:.3f}",
        ]
        for cname, e in s["mask_leak"].items()
    ]
    r.add(md_table(header, rows) + "\n")
    r.add(
        "The validity mask is computed on the *noiseless* flux and the velocity map is exactly 0 outside it, "
        "so the velocity input carries a noiseless isophote (5 % of the peak) of the lensed image. When the "
        "lens and source are fixed (control), any change of that isophote is a subhalo; a CNN can read it "
        "without using a single velocity value. The control's velocity gains above must be read with this in "
        "mind. With random lenses and sources (headline) the isophote is still noiseless information about "
        "the flux morphology, but not a direct detector. The v1 studies above ran with this idealised mask "
        "(`noise.mask_from=noiseless`, pinned in their experiment files); the simulator now computes the "
        "mask on the noisy observed flux by default (`noise.mask_from=observed`), see the next section.\n"
    )


#: leak_checks classifiers: (column title, key) in the order of the table
_LEAK_COLUMNS = (
    ("mask, Hamming", "mask_hamming"),
    ("mask, naive Bayes", "mask_bayes"),
    ("shuffled mask, naive Bayes", "mask_bayes_shuffled"),
    ("shuffled velocity χ²", "velocity_chi2_shuffled"),
    ("own velocity χ² (reference)", "velocity_chi2_paired"),
    ("flux χ² (reference)", "flux_chi2"),
    ("flux, naive Bayes (reference)", "flux_bayes"),
)


def _leak_checks(r: Report, s: Mapping[str, Any]) -> None:
    """The leak checks of ``lensml.analysis.leak_checks`` (summary version 2)."""
    r.section("Leak checks: what the mask and a shuffled velocity map reveal (control, no training)", s)
    conds = s["mask_leak"]["conditions"]
    rows = [[f"`{c}`", *(fmt_ci(e[k]) for _, k in _LEAK_COLUMNS)] for c, e in conds.items()]
    r.add(md_table(["condition (AUC [95% CI])", *(t for t, _ in _LEAK_COLUMNS)], rows) + "\n")
    n = next(iter(conds.values()))
    r.add(
        f"{n['n']} test and {n['n_train']} training samples per condition. The shuffled columns (velocity "
        "and mask of another sample, as in the `flux_shuffled_velocity` ablation) must be at chance; the "
        "`noiseless_mask` condition is the positive control (an idealised mask computed on the noiseless "
        "flux is a noise-free isophote and gives the subhalo away). With the observed mask, the mask is a "
        "threshold of the observed flux: it can tell no more than the flux itself (the flux columns), and "
        "where the subhalo's flux signal reaches the isophote a mask-only classifier is above chance without "
        "a leak.\n"
    )


def render_control_ablations(r: Report) -> None:
    _ablations(
        r, "control_ablations", "Control ablations — shuffled velocities and velocity only, known macro model"
    )


def render_ablations(r: Report) -> None:
    _ablations(r, "ablations", "Study 5 — ablations: shuffled velocities, velocity only")


def _shuffled_reading(ci: tuple[float, float]) -> str:
    """What the shuffled − baseline ΔAUC interval ``ci`` says (the shuffled model should fall to the
    baseline)."""
    lo, hi = ci
    if lo <= 0 <= hi:
        return "consistent with the baseline (interval contains 0)."
    if lo > 0:
        return (
            "NOT within the interval of the baseline: the shuffled model is better. Possible "
            "reasons (not tested here): the second stream adds capacity to the flux stream's "
            "features, or the shuffled velocity maps still carry information about their own flux "
            "partner (e.g. a shared mask geometry when the source and lens are nearly fixed)."
        )
    return (
        "NOT within the interval of the baseline: the shuffled model is worse. The mismatched "
        "velocity map is not neutral: it carries its own sample's subhalo imprint and mask (see "
        "*Mask leak*), i.e. evidence about another sample's label, which the network "
        "must learn to ignore — a cost at this short training schedule."
    )


def _ablations(r: Report, key: str, title: str) -> None:
    s = r.s.get(key)
    if not s:
        return
    r.section(title, s)
    variants = [
        v
        for v in ("baseline", "dual_stream", "dual_shuffled", "velocity_only")
        if any(v in c["variants"] for c in s["conditions"].values())
    ]
    r.add(variants_table(s["conditions"], variants) + "\n")
    r.add("Paired differences:\n")
    r.add(paired_table(s["conditions"]) + "\n")
    checks = []
    for cname, c in s["conditions"].items():
        comp = pair(c, "baseline", "dual_shuffled")
        if comp:
            why = _shuffled_reading(comp["auc"]["ci"])
            checks.append(f"`{cname}`: shuffled − baseline ΔAUC {fmt_ci(comp['auc'], True)} → {why}")
    if checks:
        r.add("**Shuffled-velocity check** (expected to fall to the baseline): " + " ".join(checks) + "\n")
    conds = s["conditions"]
    r.fig(f"{key}.png", plots.metric_vs_condition(conds, list(conds)), key)

"""The v2 ablations' section (study ``ablations_resnet``): the v2 detector trained on flux, flux + velocity,
flux + another sample's velocity and mask, velocity only, the mask only, and the flux in S/N units or beside
the mask; what each comparison tells, from its interval (and, with one seed, the headline's seed spread)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lensml.analysis import plots
from lensml.analysis.markdown import fmt_ci
from lensml.reporting.core import Report
from lensml.reporting.tables import detects, pair, paired_table, variants_table

VARIANTS = (
    "flux", "flux_velocity", "shuffled_velocity", "velocity_only", "mask_only", "flux_snr", "flux_mask",
    "flux_velocity_snr",
)


#: (a, b, what b − a asks, what a significant b > a says, what a significant b < a says)
READINGS: tuple[tuple[str, str, str, str, str], ...] = (
    ("flux", "flux_velocity", "velocity added to the flux",
     "the velocity map helps the detector",
     "the velocity map costs the detector (a distraction, not a help)"),
    ("flux_velocity", "shuffled_velocity", "another sample's velocity map instead of its own",
     "the detector does better with another sample's velocity map: its own costs it",
     "the detector uses what its own velocity map tells"),
    ("flux", "mask_only", "the mask alone instead of the flux",
     "the outline alone beats the flux at the same budget: the flux network has not learned all that its "
     "input holds (a learning limit)", "the flux tells more than its outline"),
    ("flux", "flux_snr", "the flux in S/N units instead of peak-normalised",
     "the S/N scaling helps the flux network learn", "the S/N scaling hinders it"),
    ("flux", "flux_mask", "the mask beside the flux",
     "making the outline explicit helps the flux network learn", "the mask beside the flux hinders it"),
    ("flux_snr", "flux_velocity_snr", "velocity added to the S/N-scaled flux",
     "with the flux scaled well, the velocity map helps",
     "with the flux scaled well, the velocity map costs"),
    ("mask_only", "velocity_only", "the velocity map instead of the mask: the same outline (the map is 0 "
     "outside the mask) plus the velocities inside it",
     "the velocities inside the outline tell the network something the outline does not",
     "the network does worse with the velocities than with the bare outline"),
)


def seed_spread(head: Mapping[str, Any] | None, cname: str) -> tuple[float, str] | None:
    """The largest seed-to-seed AUC range (and its variant) of the ``headline_resnet`` study in test bin
    ``cname``, over the variants its paired comparisons compare (the image detectors, not the oracle-residual
    bound trained on other inputs); None without one."""
    c = (head or {}).get("conditions", {}).get(cname)
    compared = {x[k] for x in (c or {}).get("comparisons", []) for k in ("a", "b")}
    ranges = [(max(sv) - min(sv), v) for v, e in (c or {}).get("variants", {}).items()
              if v in compared and len(sv := e["auc"].get("seed_values") or []) > 1]
    return max(ranges) if ranges else None


def not_learning(runs: Mapping[str, Mapping[str, Any]], tol: float = 0.01) -> dict[str, int]:
    """Variant -> the first epoch from which one of its runs' validation AUC stayed within ``tol`` of 0.5 to
    the end (at least the last two epochs): a run that did not learn (a constant output gives exactly 0.5)."""
    out: dict[str, int] = {}
    for run in runs.values():
        curve = [float(x) for x in run.get("val_auc_per_epoch") or []]
        k = len(curve)
        while k > 0 and abs(curve[k - 1] - 0.5) <= tol:
            k -= 1
        if len(curve) - k >= 2:
            out[str(run["variant"])] = k
    return out


def head_norms(runs: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The ``model.net.head_norm`` values of a summary's residual-net runs ("none" where not recorded)."""
    return {str(r.get("head_norm", "none")) for r in runs.values()
            if str(r.get("model") or "").startswith("resnet")}


def old_head_variants(runs: Mapping[str, Mapping[str, Any]], dead: Mapping[str, int]) -> list[str]:
    """The ``dead`` variants with a residual-net run trained with the head without BatchNorm, sorted."""
    return sorted({str(r["variant"]) for r in runs.values()
                   if r.get("variant") in dead and str(r.get("model") or "").startswith("resnet")
                   and r.get("head_norm", "none") == "none"})


def failure_cause(runs: Mapping[str, Mapping[str, Any]], dead: Mapping[str, int]) -> str:
    """Why the runs of the ``dead`` variants (``not_learning``) may have failed: a residual net whose
    head had no BatchNorm (``head_norm`` "none", or not recorded: runs made before the key existed); "" if
    none of them had it."""
    old = old_head_variants(runs, dead)
    if not old:
        return ""
    return (f"The {', '.join(old)} run(s) had the head without BatchNorm (`model.net.head_norm=none`, the "
            "runs made before it was added). That head can fail this way: in a probe of a stuck flux + "
            "velocity run, all 64 hidden units of its head were dead on the target priors once the "
            "curriculum had moved to them, so the network output a constant; with `head_norm=batch` (the "
            "default since) the same set-up learns. Whether a run failed for this reason, or had nothing to "
            "learn from its input, only retraining it with the current code tells.")


def paired_reading(c: Mapping[str, Any], reading: tuple[str, str, str, str, str], one_seed: bool,
                   spread: tuple[float, str] | None, dead: Mapping[str, int] | None = None) -> str | None:
    """What the paired ΔAUC (b − a) of condition ``c`` says, from its interval; with one network seed, an
    effect inside the headline's seed-to-seed ``spread`` is not attributed to the input; a comparison with a
    variant that did not learn (``dead``: variant -> epoch, from ``not_learning``) says nothing about the
    input."""
    a, b, asks, up, down = reading
    comp = pair(c, a, b)
    if comp is None:
        return None
    lo, hi = comp["auc"]["ci"]
    d = f"{b} − {a} ΔAUC {fmt_ci(comp['auc'], True)} ({asks})"
    gone = [v for v in (a, b) if v in (dead or {})]
    if gone:
        return (f"{d}: the {gone[0]} run did not learn (validation AUC within 0.01 of 0.5 from epoch "
                f"{dead[gone[0]]}: a failed training, or nothing to learn), so this is no evidence about its "
                "input")
    if lo <= 0 <= hi:
        return f"{d}: no significant difference"
    if one_seed and spread and abs(comp["auc"]["value"]) <= spread[0]:
        return (f"{d}: outside the test-sample interval but within the seed-to-seed spread of the headline "
                f"({spread[0]:.3f}, {spread[1]}), which this interval does not fold in: not attributable to "
                "the input")
    return f"{d}: {up if lo > 0 else down}"


def alone_reading(c: Mapping[str, Any], variant: str, what: str, dead: Mapping[str, int] | None = None
                  ) -> str | None:
    """An input alone against chance: above (AUC interval > 0.5), below (< 0.5) or not distinguishable (with
    the caveat when its run did not learn: ``dead`` as in ``paired_reading``)."""
    v = c["variants"].get(variant)
    if v is None:
        return None
    auc = v["auc"]
    if variant in (dead or {}):
        return (f"{what} alone is not distinguishable from chance (AUC {fmt_ci(auc)}) and its run did not "
                "learn: nothing to learn from it, or a failed training (one seed cannot tell)")
    if detects(auc):
        return f"{what} alone detects above chance (AUC {fmt_ci(auc)})"
    if auc["ci"][1] < 0.5:
        return f"{what} alone is below chance (AUC {fmt_ci(auc)}): anti-correlated, worth a look"
    return f"{what} alone is not distinguishable from chance (AUC {fmt_ci(auc)})"


def render(r: Report) -> None:
    """The section: every variant's AUC, the paired differences, and what each tells."""
    s = r.s.get("ablations_resnet")
    if not s:
        return
    r.section("Ablations (v2) — what the detector uses", s, scale=True)
    conds = s["conditions"]
    variants = [v for v in VARIANTS if any(v in c["variants"] for c in conds.values())]
    r.add(variants_table(conds, variants) + "\n")
    r.add("Paired differences (identical test samples):\n")
    r.add(paired_table(conds) + "\n")
    one_seed = len(s["scale"]["seeds"]) == 1
    dead = not_learning(s.get("runs") or {})
    lines = []
    for cname, c in conds.items():
        spread = seed_spread(r.s.get("headline_resnet"), cname)
        parts = [paired_reading(c, rd, one_seed, spread, dead) for rd in READINGS]
        parts += [alone_reading(c, "velocity_only", "the velocity map (0 outside the observed mask, so it "
                                "holds the mask's outline too)", dead),
                  alone_reading(c, "mask_only", "the mask", dead)]
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
        if cause := failure_cause(s.get("runs") or {}, dead):
            r.add(cause + "\n")
        if one_seed:
            r.add("One network seed per variant: the intervals are over test samples only, not over network "
                  "seeds; an effect smaller than the headline's seed-to-seed spread in the same bin is not "
                  "attributed to the input.\n")
    r.fig("ablations_resnet.png", plots.metric_vs_condition(conds, list(conds)), "ablations_resnet")

"""The ``headline_resnet`` study's section (v2 headline): flux only vs flux + velocity with the same residual
network and budget; per mass bin AUC and recall at 1 / 5 / 10 % FPR with intervals that fold in the seed
spread, the floor test, M50 with its bootstrap interval and Delta log10 M50, the learning curves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lensml.analysis import plots
from lensml.analysis.forecast_section import nominal_results
from lensml.analysis.markdown import fmt_ci, md_table
from lensml.reporting.ablations_v2 import failure_cause, head_norms, not_learning, seed_spread
from lensml.reporting.core import Report
from lensml.reporting.tables import above, fmt_seeds, pair, verdict

STUDY = "headline_resnet"
LONG = "headline_resnet_long"
RECALLS = (("recall_at_fpr1", "1 %"), ("recall_at_fpr5", "5 %"), ("recall_at_fpr10", "10 %"))


def fmt_mass(m: float | None) -> str:
    """A mass in M_sun as ``3.2e10``; ``n/a`` if None."""
    if m is None:
        return "n/a"
    mant, _, exp = f"{m:.2g}".partition("e")
    return f"{mant}e{int(exp)}" if exp else mant


def fmt_m50(m: Mapping[str, Any] | None, top: float, bottom: float | None = None) -> str:
    """``M50 [lo, hi]`` (M_sun); a bound above the binned range (``top``, log10) is written ``> 1e<top>``, one
    reached already in the lowest bin (centre ``bottom``, log10) ``<= M``: an upper limit."""
    if not m:
        return "n/a"
    lo, hi = m["ci"]
    above_range = f"> {fmt_mass(10**top)}"

    def one(x: float | None) -> str:
        if x is None:
            return above_range
        low = bottom is not None and abs(float(np.log10(x)) - bottom) < 1e-6
        return ("<= " if low else "") + fmt_mass(x)

    return f"{one(m['value'])} [{one(lo)}, {one(hi)}]"


def lowest_centre(edges: list[float] | None) -> float | None:
    """The centre (log10 M) of the lowest mass bin of ``edges``."""
    return 0.5 * (edges[0] + edges[1]) if edges and len(edges) > 1 else None


def _pairs(h: Mapping[str, Any]) -> list[tuple[str, str]]:
    first = next(iter(h["conditions"].values()))
    return [(c["a"], c["b"]) for c in first["comparisons"]]


def against_seed_spread(h: Mapping[str, Any], base: Mapping[str, Any] | None
                        ) -> tuple[list[tuple[str, float, float]], list[tuple[str, float, float]]]:
    """For a study with one seed per variant: its significant paired ΔAUCs (bin, Δ, the ``base`` study's
    seed-to-seed AUC range in that bin) split into those larger than that range and those within it (which
    the single-seed interval does not fold in, so they are not attributed to the input)."""
    beyond: list[tuple[str, float, float]] = []
    within: list[tuple[str, float, float]] = []
    for cname, c in h["conditions"].items():
        spread = seed_spread(base, cname)
        for a, b in _pairs(h):
            comp = pair(c, a, b)
            if comp is None or spread is None or comp["auc"]["ci"][0] <= 0 <= comp["auc"]["ci"][1]:
                continue
            d = float(comp["auc"]["value"])
            (beyond if abs(d) > spread[0] else within).append((cname, d, float(spread[0])))
    return beyond, within


def _spread_note(h: Mapping[str, Any], base: Mapping[str, Any] | None) -> str:
    """The one-seed caveat of ``against_seed_spread`` as a paragraph ("" with more seeds or no base)."""
    if base is None or len(h["scale"].get("seeds") or []) != 1:
        return ""
    beyond, within = against_seed_spread(h, base)
    if not (beyond or within):
        return ""

    def fmt(xs: list[tuple[str, float, float]]) -> str:
        return ", ".join(f"`{c}` {d:+.3f} (range {s:.3f})" for c, d, s in xs) or "none"

    return ("One network seed per variant: the intervals above are over test samples only. Against the "
            f"seed-to-seed AUC range of `{STUDY}` in the same bin, the significant differences are larger in "
            f"{fmt(beyond)}; within it in {fmt(within)} (not attributed to the input). More seeds of this "
            "study would fold the seed spread in.\n")


def render(r: Report) -> None:
    h = r.s.get(STUDY)
    if not h:
        return
    r.section("Headline (v2): flux only vs flux + velocity, the same residual network", h, scale=True)
    _render_bins(r, h)
    render_m50(r, h)
    render_fits(r, h)
    render_answers(r, h)
    r.fig("headline_v2_sensitivity.png",
          plots.sensitivity_figure(h["sensitivity"], h["sensitivity"].get("distance_conditions", [])),
          "detection rate at 5 % FPR vs subhalo mass and vs distance from the arc")
    r.fig("headline_v2_learning_curves.png", plots.learning_curves(h["runs"]),
          "validation AUC vs training samples seen")


def render_long(r: Report) -> None:
    """``headline_resnet_long``: the headline's runs trained longer (one seed), on the same test bins."""
    h = r.s.get(LONG)
    if not h:
        return
    samples = h["scale"]["n_train"] * h["scale"]["epochs"]
    r.section(f"Headline (v2) trained longer: {samples / 1e6:.2f}M samples per run", h, scale=True)
    dead = not_learning(h.get("runs") or {})
    if dead:
        which = ", ".join(f"{v} (from epoch {k})" for v, k in dead.items())
        r.add(f"**Runs that did not learn** (validation AUC within 0.01 of 0.5 for their last epochs; a "
              f"failed training, not a property of the input): {which}. Their rows below and every "
              "comparison with them are no evidence about the velocity field. "
              + failure_cause(h.get("runs") or {}, dead) + "\n")
    _render_bins(r, h)
    base = r.s.get(STUDY)
    if note := _spread_note(h, base):
        r.add(note)
    if base:
        variants = list(dict.fromkeys(v for c in h["conditions"].values() for v in c["variants"]))
        rows = []
        for cname, c in h["conditions"].items():
            b = base["conditions"].get(cname)
            if b:
                rows.append([f"`{cname}`", *(_before_after(b, c, v) for v in variants)])
        base_n = base["scale"]["n_train"] * base["scale"]["epochs"]
        r.add(f"AUC after {base_n / 1e3:.0f}k samples (`{STUDY}`, {len(base['scale']['seeds'])} seeds) → "
              f"after {samples / 1e6:.2f}M ({len(h['scale']['seeds'])} seed), on identical test samples:\n\n"
              + md_table(["test bin", *variants], rows) + "\n")
        before, after = head_norms(base.get("runs") or {}), head_norms(h.get("runs") or {})
        if before != after:
            r.add(f"The two studies' networks differ in their head as well (`model.net.head_norm`: "
                  f"{', '.join(sorted(before))} → {', '.join(sorted(after))}): a change from one to the "
                  "other is training length and head together.\n")
    render_m50(r, h)
    runs = {**(base or {}).get("runs", {}), **{f"long:{k}": v for k, v in h["runs"].items()}}
    r.fig("headline_long_learning_curves.png", plots.learning_curves(runs),
          "validation AUC vs training samples seen: the headline's seeds and the longer runs")


def _before_after(before: Mapping[str, Any], after: Mapping[str, Any], variant: str) -> str:
    """``AUC before → AUC after`` of one variant in one test bin ("–" where either lacks it)."""
    if variant not in before["variants"] or variant not in after["variants"]:
        return "–"
    return f"{fmt_ci(before['variants'][variant]['auc'])} → {fmt_ci(after['variants'][variant]['auc'])}"


def _render_bins(r: Report, h: Mapping[str, Any]) -> None:
    """Per mass bin: the paired comparison with recalls, the per-seed AUCs and the floor test."""
    folded = " and the network seeds" if h.get("seeds_folded") else ""
    for a, b in _pairs(h):
        rows = []
        for cname, c in h["conditions"].items():
            va, vb, comp = c["variants"].get(a), c["variants"].get(b), pair(c, a, b)
            if not (va and vb and comp):
                continue
            cells = [f"`{cname}`", fmt_ci(va["auc"]), fmt_ci(vb["auc"]), fmt_ci(comp["auc"], True),
                     verdict(comp["auc"])]
            for key, _ in RECALLS:
                if key in va:
                    cells += [f"{fmt_ci(va[key])} / {fmt_ci(vb[key])}"]
            rows.append(cells)
        header = ["test bin", f"AUC {a}", f"AUC {b}", f"ΔAUC ({b} − {a})", "verdict"]
        header += [f"recall@{p} FPR {a} / {b}" for key, p in RECALLS
                   if key in next(iter(h["conditions"].values()))["variants"][a]]
        r.add(f"Per mass bin (95 % bootstrap over test samples{folded}; paired differences on the same "
              "resamples):\n\n" + md_table(header, rows) + "\n")
        seed_rows = [[f"`{cname}`", fmt_seeds(c["variants"][a]["auc"]), fmt_seeds(c["variants"][b]["auc"])]
                     for cname, c in h["conditions"].items() if a in c["variants"] and b in c["variants"]]
        if len(h["scale"].get("seeds") or []) > 1:
            r.add("Per-seed AUC (the seed spread):\n\n"
                  + md_table(["test bin", f"{a} seeds", f"{b} seeds"], seed_rows) + "\n")
    null = h.get("null_condition")
    if null:
        variants = list(next(iter(h["conditions"].values()))["variants"])
        floor_conds = (h.get("sensitivity") or {}).get("conditions") or list(h["conditions"])
        rows = [[f"`{cname}`", *(f"{fmt_ci(vn.get(v), True)} ({above(vn.get(v))})" for v in variants)]
                for cname, c in h["conditions"].items()
                if cname in floor_conds and (vn := c.get("vs_null") or {})]
        r.add(f"Above the floor? Paired AUC(bin) − AUC(`{null}`) (same negatives, lenses and sources; only "
              "the subhalo mass differs):\n\n" + md_table(["test bin", *variants], rows) + "\n")


def render_m50(r: Report, h: Mapping[str, Any]) -> None:
    """The M50 table (per variant, with its interval) and the paired Delta log10 M50."""
    sens = h.get("sensitivity") or {}
    if not any("m50" in v for v in sens.get("variants", {}).values()):
        return
    top = sens["variants"][next(iter(sens["variants"]))]["vs_mass"]["edges"][-1]
    rows = [[v, fmt_m50(e["m50"], top), f"{e['m50']['frac_above_range']:.0%}"]
            for v, e in sens["variants"].items()]
    text = (f"**M50**, the subhalo M200 detected at 50 % recall at {sens['fpr']:.0%} false positives "
            "(threshold per seed on each bin's negatives; rate binned in mass, linear interpolation in "
            "log10 M between bin centres; 95 % bootstrap interval over the positives"
            + (" and the seeds" if h.get("seeds_folded") else "") + "):\n\n"
            + md_table(["model", "M50 (M_sun) [95 %]", "resamples above the range"], rows) + "\n")
    for c in sens.get("m50_comparisons", []):
        if c["dlog10"] is None:
            text += (f"\nΔlog10 M50 ({c['b']} − {c['a']}): not defined (M50 above the tested range for at "
                     "least one model).\n")
        elif c["ci"] is None:
            text += (f"\nΔlog10 M50 ({c['b']} − {c['a']}) = {c['dlog10']:+.2f}; no interval (M50 above the "
                     f"range in {1 - c['frac_defined']:.0%} of the resamples).\n")
        else:
            lo, hi = c["ci"]
            word = "lower" if hi < 0 else ("higher" if lo > 0 else "no significant difference")
            text += (f"\nΔlog10 M50 ({c['b']} − {c['a']}) = {c['dlog10']:+.2f} [{lo:+.2f}, {hi:+.2f}]: {word}"
                     + (" (velocity lowers the detectable mass)" if hi < 0 else "") + ".\n")
    r.add(text)


HYBRID_NOTE = (
    "`hybrid:*` is the hybrid detector (`lensml.analysis.hybrid`): the network trained on the oracle "
    "residuals (data − true smooth model) / sigma, fed the residuals about the *fitted* smooth model "
    "instead; `oracle:*` is the same network on the true residuals (the bound it would reach with a perfect "
    "fit). Hybrid below oracle measures what the imperfect fit costs; hybrid against `fit:*` whether a "
    "network reads the residuals better than Delta chi^2 does.\n"
)


def render_fits(r: Report, h: Mapping[str, Any]) -> None:
    """Fit-then-detect beside the CNNs on the same first n test samples of some bins."""
    fd = h.get("fit_detect")
    if not fd or not fd.get("conditions"):
        return
    names = sorted({d for c in fd["conditions"].values() for d in c["detectors"]})
    rows = []
    for cname, c in fd["conditions"].items():
        if not c["detectors"]:
            rows.append([f"`{cname}`", f"{c['n']} ({c['n_pos']})", *(["one class only"] * len(names)), "–"])
            continue
        comp = next((x for x in c["comparisons"]
                     if x["a"] == "fit:flux" and x["b"] == "fit:flux_velocity"), None)
        rows.append([f"`{cname}`", f"{c['n']} ({c['n_pos']})",
                     *(fmt_ci(c["detectors"][d]["auc"]) if d in c["detectors"] else "–" for d in names),
                     fmt_ci(comp["auc"], True) if comp else "–"])
    cost = fd.get("cost") or {}
    if any(n.startswith("hybrid:") for n in names):
        r.add(HYBRID_NOTE)
    r.add("**Fit, then detect** (the lens modeller's detector, `lensml.inference.fit`: smooth model fitted, "
          "then smooth + subhalo; score Delta chi^2) on the first samples of some test bins, beside the CNNs "
          "on the very same samples (`clean_*`: sources without clumps or bulge, which the fitted disk model "
          "can describe). AUC [95 %]:\n\n"
          + md_table(["test bin", "n (positives)", *names, "Δ fit flux+velocity − fit flux"], rows) + "\n")
    if cost:
        r.add(f"Fit cost: {cost['images_per_minute']:.2f} images per minute (both data sets; "
              f"{cost['torch_threads']} thread(s), {cost['cpu']}).\n")


def render_answers(r: Report, h: Mapping[str, Any]) -> None:
    """Three answers side by side: CNN M50, fit-then-detect M50 and the forecast's M_min, per data set."""
    sens = h.get("sensitivity") or {}
    fd_m50 = (h.get("fit_detect") or {}).get("m50") or {}
    if not any("m50" in v for v in sens.get("variants", {}).values()):
        return
    top = sens["variants"][next(iter(sens["variants"]))]["vs_mass"]["edges"][-1]
    res = nominal_results(r.s)
    fit_top = ((h.get("fit_detect") or {}).get("m50_edges_log10") or [top])[-1]
    fit_bottom = lowest_centre((h.get("fit_detect") or {}).get("m50_edges_log10"))
    rows = []
    for variant, ds in (("flux", "flux"), ("flux_velocity", "flux+velocity@10")):
        cnn = (sens["variants"].get(variant) or {}).get("m50")
        fit = fd_m50.get(f"fit:{variant}")
        ceil = (res.get(ds) or {}).get("macro_source") or {}
        m_min = ceil.get("m_min_msun")
        eff = []
        for m, t, b in ((cnn, top, None), (fit, fit_top, fit_bottom)):
            if m and m.get("value") and m_min:
                at_bottom = b is not None and abs(float(np.log10(m["value"])) - b) < 1e-6
                eff.append(f"{'>= ' if at_bottom else ''}{m_min / m['value']:.2g}")
            elif m and m_min:
                eff.append(f"< {m_min / 10 ** t:.2g}")
            else:
                eff.append("–")
        rows.append([variant, fmt_m50(cnn, top), fmt_m50(fit, fit_top, fit_bottom) if fit else "–",
                     f"{fmt_mass(m_min)} [{', '.join(fmt_mass(x) for x in ceil.get('m_min_ci95') or [])}]"
                     if m_min else "–", *eff])
    r.add("**Three answers side by side** (M50: 50 % recall at 5 % false positives; the CNN's on the full "
          "test bins, the fit's on the `clean_*` bins it was run on; the forecast's M_min: 5 sigma for the "
          "median draw, macro lens + parametric source marginalised, sigma_v = 10 km/s; efficiency = "
          "M_min / M50, 1 = at the ceiling; M50 at 5 % false positives is a looser criterion than 5 "
          "sigma, so an efficiency above 1 is possible; `<=`: reached in the lowest mass bin fitted, an "
          "upper limit):\n\n"
          + md_table(["data set", "CNN M50 [95 %]", "fit-then-detect M50 [95 %]", "forecast M_min [95 %]",
                      "CNN efficiency", "fit efficiency"], rows) + "\n")

"""The v2 report's answer, in a few lines at its top: does the velocity field help the CNN, the lens
modeller's fit and the ideal observer, and where? Every verdict comes from a 95 % interval of a paired
difference (``answer`` returns the data, ``render`` writes it); nothing without ``headline_resnet``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from lensml.analysis.forecast_section import lowers_significantly, results_by_noise
from lensml.analysis.markdown import fmt_ci
from lensml.reporting.ablations_v2 import not_learning, old_head_variants
from lensml.reporting.core import Report
from lensml.reporting.headline_v2 import against_seed_spread, fmt_m50, fmt_mass, lowest_centre
from lensml.reporting.tables import pair, verdict

Summaries = Mapping[str, Mapping[str, Any]]
FLUX, FV = "flux", "flux_velocity"
ABLATED = ("velocity_only", "mask_only", FLUX)  # ablations_resnet variants whose AUC the answer quotes


def _by_verdict(conds: Mapping[str, Any], names: list[str], a: str, b: str) -> dict[str, list[str]]:
    """verdict of the paired ΔAUC (b − a) -> the conditions with it (in ``names`` order)."""
    out: dict[str, list[str]] = {}
    for cname in names:
        comp = pair(conds[cname], a, b) if cname in conds else None
        if comp:
            out.setdefault(verdict(comp["auc"]), []).append(cname)
    return out


def answer(s: Summaries) -> dict[str, Any] | None:
    """The answer's data: the CNNs' per-bin verdicts, best AUC and M50s; the fit's per-condition AUCs and
    verdicts; the forecast's M_min per data set; the robustness verdicts. None without ``headline_resnet``."""
    h = s.get("headline_resnet")
    if not h:
        return None
    sens = h.get("sensitivity") or {}
    bins = list(sens.get("conditions") or h["conditions"])
    out: dict[str, Any] = {"cnn_verdicts": _by_verdict(h["conditions"], bins, FLUX, FV)}
    best = {}
    for v in (FLUX, FV):
        aucs = [
            (h["conditions"][c]["variants"][v]["auc"], c) for c in bins if v in h["conditions"][c]["variants"]
        ]
        if aucs:
            m, c = max(aucs, key=lambda x: x[0]["value"])
            best[v] = {"condition": c, "auc": m}
    out["cnn_best"] = best
    top = None
    if sens.get("variants"):
        top = sens["variants"][next(iter(sens["variants"]))]["vs_mass"]["edges"][-1]
    out["cnn_m50"] = {v: e.get("m50") for v, e in (sens.get("variants") or {}).items()}
    out["cnn_m50_top"] = top
    out["cnn_dm50"] = next(iter(sens.get("m50_comparisons") or []), None)
    fd = h.get("fit_detect") or {}
    fits = []
    for cname, c in (fd.get("conditions") or {}).items():
        det = c.get("detectors") or {}
        comp = next(
            (x for x in c.get("comparisons", []) if x["a"] == "fit:flux" and x["b"] == "fit:flux_velocity"),
            None,
        )
        fits.append(
            {
                "condition": cname,
                "n": c["n"],
                "fit_flux": (det.get("fit:flux") or {}).get("auc"),
                "fit_fv": (det.get("fit:flux_velocity") or {}).get("auc"),
                "cnn_fv": (det.get(f"cnn:{FV}") or {}).get("auc"),
                "verdict": verdict(comp["auc"]) if comp else None,
            }
        )
    out["fits"] = fits
    out["fit_m50"] = fd.get("m50") or {}
    out["fit_m50_top"] = (fd.get("m50_edges_log10") or [None])[-1]
    out["fit_m50_bottom"] = lowest_centre(fd.get("m50_edges_log10"))
    by_noise = {noise: {ds: r.get("macro_source") or {} for ds, r in res.items()}
                for noise, res in results_by_noise(s).items()}
    out["ceiling"] = {noise: {ds: r.get("m_min_msun") for ds, r in res.items()}
                      for noise, res in by_noise.items()}
    out["ceiling_overlap"] = {  # the data sets whose M_min is not significantly below flux's
        noise: [ds for ds, r in res.items() if ds != "flux" and not lowers_significantly(r, res.get("flux"))]
        for noise, res in by_noise.items()
    }
    out["ceiling_note"] = {noise: (res.get("flux") or {}).get("m_min_note")
                           for noise, res in by_noise.items()}
    rb = s.get("robustness_resnet")
    if rb:
        out["robustness"] = _by_verdict(rb["conditions"], list(rb["conditions"]), FLUX, FV)
    long = s.get("headline_resnet_long")
    if long:
        lbins = [c for c in bins if c in long["conditions"]]
        out["long"] = {
            "not_learning": sorted(dead_long := not_learning(long.get("runs") or {})),
            "old_head": old_head_variants(long.get("runs") or {}, dead_long),
            "samples": long["scale"]["n_train"] * long["scale"]["epochs"],
            "seeds": len(long["scale"].get("seeds") or []),
            "verdicts": _by_verdict(long["conditions"], lbins, FLUX, FV),
            "seed_spread": ([[c for c, _, _ in part if c in lbins]
                             for part in against_seed_spread(long, s.get("headline_resnet"))]
                            if len(long["scale"].get("seeds") or []) == 1 else None),
            "best": {v: max(((long["conditions"][c]["variants"][v]["auc"], c) for c in lbins),
                            key=lambda x: x[0]["value"]) for v in (FLUX, FV)
                     if lbins and all(v in long["conditions"][c]["variants"] for c in lbins)},
        }
    ab = s.get("ablations_resnet")
    if ab:
        per_variant = Counter(str(run["variant"]) for run in (ab.get("runs") or {}).values())
        counts = sorted(set(per_variant.values())) or [len(ab.get("scale", {}).get("seeds") or [])]
        n = f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else str(counts[0])
        out["ablation_seeds"] = f"{n} seed{'' if n == '1' else 's'} per variant"
        out["ablation_not_learning"] = sorted(dead_ab := not_learning(ab.get("runs") or {}))
        out["ablation_old_head"] = old_head_variants(ab.get("runs") or {}, dead_ab)
        out["ablations"] = {
            cname: {"shuffled": pair(c, FV, "shuffled_velocity"), "velocity": pair(c, FLUX, FV),
                    "snr": pair(c, FLUX, "flux_snr"),
                    "velocity_snr": pair(c, "flux_snr", "flux_velocity_snr"),
                    **{v: (c["variants"].get(v) or {}).get("auc") for v in ABLATED}}
            for cname, c in ab["conditions"].items()
        }
    return out


def _old_head(variants: list[str]) -> str:
    """The known possible cause of failed trainings, naming the variants it applies to ("" for none)."""
    if not variants:
        return ""
    return f"; {', '.join(variants)} trained with the head without BatchNorm, which can fail this way"


def _spread_clause(split: list[list[str]] | None) -> str:
    """With one seed: the bins whose significant Δ exceeds the headline's seed-to-seed AUC range, and those
    within it (``[beyond, within]`` of ``headline_v2.against_seed_spread``; "" without a seed spread)."""
    if not split or not any(split):
        return ""
    beyond, within = (", ".join(f"`{c}`" for c in part) or "no bin" for part in split)
    return (f" One seed: larger than the headline's seed-to-seed AUC range in {beyond}, within it in "
            f"{within} (not attributed to the input); to be confirmed with more seeds.")


def _verdict_line(by: Mapping[str, list[str]]) -> str:
    parts = [f"{word}: {', '.join(f'`{c}`' for c in conds)}" for word, conds in by.items()]
    return "; ".join(parts) if parts else "no comparisons"


def _snr_velocity(comp: Mapping[str, Any] | None, dead: list[str]) -> str | None:
    """The velocity's paired effect beside the S/N-scaled flux, as a clause (None without it; no verdict
    when one of the two runs did not learn, ``dead``)."""
    if not comp:
        return None
    if {"flux_snr", "flux_velocity_snr"} & set(dead):
        return "with S/N-scaled flux, flux + velocity: a run did not learn, no answer yet"
    d = fmt_ci(comp["auc"], True)
    return f"with S/N-scaled flux, flux + velocity − flux ΔAUC {d} ({verdict(comp['auc'])})"


def render(r: Report) -> None:
    a = answer(r.s)
    if not a:
        return
    lines = [
        "## The answer so far (v2)\n",
        "Flux only vs flux + velocity, each verdict from the 95 % interval of a paired difference on the "
        "same test samples (details in the sections below):\n",
    ]
    best = "; ".join(f"{v} {fmt_ci(b['auc'])} at `{b['condition']}`" for v, b in a["cnn_best"].items())
    lines.append(
        f"- **CNN** (the same residual network, same samples seen; headline task): best AUC {best}. "
        f"ΔAUC (flux + velocity − flux) per mass bin — {_verdict_line(a['cnn_verdicts'])}."
    )
    if a["cnn_m50"] and a["cnn_m50_top"] is not None:
        m50 = ", ".join(f"{v} {fmt_m50(m, a['cnn_m50_top'])}" for v, m in a["cnn_m50"].items())
        d = a["cnn_dm50"]
        dtxt = ""
        if d and d.get("ci"):
            dtxt = f"; Δlog10 M50 {d['dlog10']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]"
        lines.append(f"  M50 (M_sun, 50 % recall at 5 % FPR): {m50}{dtxt}.")
    if a["fits"]:
        rows = "; ".join(
            f"`{f['condition']}` (n = {f['n']}): flux {fmt_ci(f['fit_flux'])}, flux + velocity "
            f"{fmt_ci(f['fit_fv'])} ({f['verdict'] or 'n/a'}; CNN flux + velocity {fmt_ci(f['cnn_fv'])})"
            for f in a["fits"]
        )
        lines.append(f"- **Fit, then detect** (smooth model fitted, Delta chi^2), AUC: {rows}.")
        if a["fit_m50"] and a["fit_m50_top"] is not None:
            m50 = ", ".join(
                f"{k.removeprefix('fit:')} {fmt_m50(m, a['fit_m50_top'], a['fit_m50_bottom'])}"
                for k, m in a["fit_m50"].items()
            )
            lines.append(f"  Its M50 on sources it can describe: {m50}.")
    groups = []
    for noise, ceil in (a.get("ceiling") or {}).items():
        if not ceil.get("flux"):
            note = a["ceiling_note"].get(noise) or "not reached in the mass bins"
            groups.append(f"{noise} noise: flux alone {note}")
            continue
        overlap = a["ceiling_overlap"].get(noise, [])
        ratios = ", ".join(
            f"{ds.split('@')[-1]} km/s x{ceil['flux'] / m:.2f}" + (" (n.s.)" if ds in overlap else "")
            for ds, m in ceil.items()
            if ds.startswith("flux+velocity@") and m
        )
        groups.append(f"{noise} noise: flux alone {fmt_mass(ceil['flux'])} M_sun, lowered by {ratios}")
    if groups:
        lines.append(
            "- **Ceiling** (forecast, macro lens + source marginalised; M_min at 5 sigma, and the factor by "
            "which the velocity map lowers it at each velocity floor; n.s.: not significantly lower, from "
            "the paired ratio's interval or, in older summaries, overlapping M_min intervals): "
            + "; ".join(groups) + "."
        )
    if a.get("robustness"):
        lines.append(
            f"- **Under shifts** (PSF, S/N, velocity floor and grid, MaNGA source; 1e11 bin): "
            f"{_verdict_line(a['robustness'])}."
        )
    if a.get("long"):
        lg = a["long"]
        best = "; ".join(f"{v} {fmt_ci(m)} at `{c}`" for v, (m, c) in lg["best"].items())
        lines.append(
            f"- **Trained longer** ({lg['samples'] / 1e6:.2f}M samples per run, {lg['seeds']} seed"
            f"{'s' if lg['seeds'] != 1 else ''}): best AUC {best}. "
            + (f"ΔAUC per mass bin — {_verdict_line(lg['verdicts'])}." + _spread_clause(lg["seed_spread"])
               if not lg["not_learning"] else
               f"No comparison: the {', '.join(lg['not_learning'])} run did not learn (a failed training"
               + _old_head(lg["old_head"]) + ").")
        )
    if a.get("ablations"):
        parts = []
        for cname, e in a["ablations"].items():
            sh = e.get("shuffled")
            dv = e.get("velocity")
            dtxt = (f"flux + velocity − flux ΔAUC {fmt_ci(dv['auc'], True)} ({verdict(dv['auc'])})"
                    if dv else None)
            bits = [dtxt,
                    f"shuffled − paired velocity ΔAUC {fmt_ci(sh['auc'], True)}" if sh else None,
                    f"flux in S/N units − flux ΔAUC {fmt_ci(e['snr']['auc'], True)}" if e.get("snr")
                    else None,
                    _snr_velocity(e.get("velocity_snr"), a["ablation_not_learning"]),
                    f"velocity alone AUC {fmt_ci(e['velocity_only'])}" if e.get("velocity_only") else None,
                    f"mask alone {fmt_ci(e['mask_only'])}" if e.get("mask_only") else None,
                    f"flux {fmt_ci(e[FLUX])}" if e.get(FLUX) else None]
            parts.append(f"`{cname}`: " + ", ".join(b for b in bits if b))
        seeds = a["ablation_seeds"]
        head = f"- **Ablations** (same network and budget, {seeds}; "
        dead = a["ablation_not_learning"]
        tail = (f" Runs that did not learn: {', '.join(dead)}"
                + _old_head(a["ablation_old_head"]) + ".") if dead else ""
        lines.append(head + "the section below judges each effect against the seed spread): "
                     + "; ".join(parts) + "." + tail)
    r.add("\n".join(lines) + "\n")

"""What the ``forecast`` study's report section says, computed from its summary: the information ceiling.

Reads one noise group of the study summary written by ``lensml.forecast.run_study`` (the linearised
significance per mass bin, data set and marginalisation, with M_min and bootstrap intervals) and answers: how
far the velocity field (moment map at each velocity floor, and the cube) moves M_min under each
marginalisation, and how close the CNN comes to it. The section itself is rendered by
``lensml.reporting.forecast``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def results_by_noise(summaries: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """noise group -> the forecast's per-data-set results (``summary.results``: data set -> marginalisation
    -> M_min ...) of the ``forecast`` summary in ``summaries``, in study order; empty without it."""
    fc = (summaries.get("forecast") or {}).get("forecast") or {}
    return {noise: (res.get("summary") or {}).get("results") or {}
            for noise, res in (fc.get("noise") or {}).items()}


def nominal_results(summaries: Mapping[str, Any]) -> Mapping[str, Any]:
    """The results of the ``nominal`` noise group (what the headline CNNs were trained and tested at); empty
    without one."""
    return results_by_noise(summaries).get("nominal") or {}


def lowers_significantly(r: Mapping[str, Any] | None, flux: Mapping[str, Any] | None) -> bool:
    """True if a data set lowers M_min below flux's beyond the interval (both entries of one marginalisation):
    from the paired ratio M_min(flux) / M_min(data set) when the summary has it (``m_min_ratio``: interval
    above 1), else (summaries before it) when the data set's M_min interval lies wholly below flux's; False
    when the intervals are missing."""
    paired = (r or {}).get("m_min_ratio")
    if paired is not None:
        return paired.get("ci95") is not None and paired["ci95"][0] > 1.0
    hi = ((r or {}).get("m_min_ci95") or [None, None])[1]
    lo_f = ((flux or {}).get("m_min_ci95") or [None, None])[0]
    return hi is not None and lo_f is not None and hi < lo_f


def _mass(r: Mapping[str, Any]) -> str:
    """M_min (M_sun), or the forecast's note where it lies outside the mass bins (e.g. '< 1.0e+09')."""
    x = r["m_min_msun"]
    return f"{x:.2g}" if x is not None else str(r.get("m_min_note") or "not reached")


def _interval(r: Mapping[str, Any]) -> str:
    lo, hi = r.get("m_min_ci95") or (None, None)
    if lo is None or hi is None:
        return ""
    return f" [{lo:.2g}, {hi:.2g}]"


def answer_rows(result: Mapping[str, Any]) -> list[list[str]]:
    """Per marginalisation and data set: M_min (M_sun, 95 % bootstrap interval) and the factor by which it
    lies below flux-only's (> 1: the data set detects lighter subhalos)."""
    res = result["summary"]["results"]
    flux = res["flux"]
    rows = []
    for marg, fr in flux.items():
        for ds, per in res.items():
            r = per.get(marg)
            if r is None:
                continue
            ratio = "–"
            if ds != "flux" and r["m_min_msun"] and fr["m_min_msun"]:
                ratio = f"x{fr['m_min_msun'] / r['m_min_msun']:.2f}"
                ci = (r.get("m_min_ratio") or {}).get("ci95")
                ratio += f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
            rows.append([marg, ds, _mass(r) + _interval(r), ratio])
    return rows


def verdict(result: Mapping[str, Any], marg: str = "macro_source", floor: str = "10") -> str:
    """One sentence: does the moment map (at ``floor`` km/s) and the cube lower M_min beyond its interval
    under marginalisation ``marg``? Judged by ``lowers_significantly`` (the paired ratio's interval)."""
    res = result["summary"]["results"]
    if marg not in res["flux"]:
        return ""
    f = res["flux"][marg]
    if not f["m_min_msun"]:
        return f"Flux alone does not reach the threshold in these mass bins under `{marg}`."
    parts = []
    for ds in (f"flux+velocity@{floor}", *(k for k in res if k.startswith("cube"))):
        r = res.get(ds, {}).get(marg)
        if not r or not r["m_min_msun"]:
            continue
        sig = lowers_significantly(r, f)
        parts.append(
            f"{ds} lowers M_min by x{f['m_min_msun'] / r['m_min_msun']:.2f} "
            + _significance(r, sig)
        )
    return f"Under `{marg}`: " + "; ".join(parts) + "." if parts else ""


def _significance(r: Mapping[str, Any], sig: bool) -> str:
    """How the verdict was reached: the paired ratio's interval, or (older summaries) the unpaired ones."""
    ci = (r.get("m_min_ratio") or {}).get("ci95")
    if "m_min_ratio" in r:
        where = f"paired interval [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "paired interval undefined"
        raises = ci is not None and ci[1] < 1.0  # the whole interval below 1: M_min significantly higher
        word = "significant" if sig else "raises M_min" if raises else "not significant at this scale"
        return f"({where}: {word})"
    return "(intervals disjoint)" if sig else "(M_min intervals overlap: not significant at this scale)"


def efficiency(summaries: Mapping[str, Any], result: Mapping[str, Any], marg: str = "macro_source") -> str:
    """CNN M50 (50 % detected at 5 % FPR) against the forecast's M_min of the matching data set under
    ``marg``: efficiency = M_min / M50 (1 = at the ceiling). M50 from the v2 headline study
    (``headline_resnet``: its bootstrap M50 with interval) if present, else from v1's ``headline`` rate vs
    mass."""
    from lensml.analysis.sensitivity import m50

    study = "headline_resnet" if (summaries.get("headline_resnet") or {}).get("sensitivity") else "headline"
    sens = (summaries.get(study) or {}).get("sensitivity")
    if not sens:
        return (
            "Detector efficiency (forecast M_min / CNN M50): no headline study summary in this report, so no "
            "CNN M50 to compare yet (the headline study at cpu scale adds it)."
        )
    res = result["summary"]["results"]
    parts = []
    for variant, v in sens["variants"].items():
        vm = v["vs_mass"]
        m = v.get("m50") or m50(vm["edges"], vm["rate"], vm["lo"], vm["hi"])
        ds = "flux" if variant in ("baseline", "flux") or "flux_only" in variant else "flux+velocity@10"
        ceiling = res.get(ds, {}).get(marg, {}).get("m_min_msun")
        if m["value"] is None:
            parts.append(f"{variant}: M50 above the tested range (> {10 ** vm['edges'][-1]:.2g} M_sun), "
                         f"efficiency < {ceiling / 10 ** vm['edges'][-1]:.2g}" if ceiling else
                         f"{variant}: M50 above the tested range")
        else:
            eff = f", efficiency {ceiling / m['value']:.2g}" if ceiling else ""
            parts.append(f"{variant}: M50 {m['value']:.2g} M_sun{eff} (vs {ds} M_min {ceiling:.2g})"
                         if ceiling else f"{variant}: M50 {m['value']:.2g} M_sun")
    return (f"Detector efficiency against the ceiling ({marg}; CNN M50 from the `{study}` study): "
            + "; ".join(parts) + ".")

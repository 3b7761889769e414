"""The report's *Findings*: the answers the studies give, each verdict computed from its 95 % intervals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lensml.analysis.markdown import fmt_ci
from lensml.reporting.core import Report
from lensml.reporting.tables import detects, pair, verdict


def render(r: Report) -> None:
    h = r.s.get("headline")
    if not h:
        return
    lines = ["## Findings\n"]
    cmp_lines, detected = [], {"baseline": [], "dual_stream": []}
    for cname, c in h["conditions"].items():
        comp = pair(c, "baseline", "dual_stream")
        if comp is None:
            continue
        b, d = c["variants"]["baseline"]["auc"], c["variants"]["dual_stream"]["auc"]
        for v, m in (("baseline", b), ("dual_stream", d)):
            vn = (c.get("vs_null") or {}).get(v)
            if cname == h.get("null_condition"):
                continue  # the floor itself
            if detects(m) and (vn is None or vn["ci"][0] > 0):
                detected[v].append(cname)
        cmp_lines.append(
            f"- `{cname}`: AUC baseline {fmt_ci(b)}, dual-stream {fmt_ci(d)}, "
            f"Δ {fmt_ci(comp['auc'], True)} → {verdict(comp['auc'])}."
        )
    lines.append(
        "**Does the velocity channel help?** Paired dual-stream − baseline ROC AUC on identical test sets, "
        "per "
        "subhalo mass bin (models trained on one population, tested per bin):\n"
    )
    lines += cmp_lines
    for v in ("baseline", "dual_stream"):
        got = detected[v]
        lines.append(
            f"\n**Where does anything get detected?** {v}: AUC interval above 0.5"
            + (
                f" and above the no-signal floor of `{h['null_condition']}`"
                if h.get("null_condition")
                else ""
            )
            + " in "
            + (", ".join(f"`{x}`" for x in got) if got else "no mass bin")
            + "."
        )
    sig = r.s.get("signal")
    if sig and sig["signal"].get("version") == 2:
        lines.append(_signal_v2_finding(sig["signal"]))
    elif sig:
        nominal = sig["signal"]["noise"].get("nominal")
        if nominal:
            ratios = [
                b["velocity_snr"]["median"] / b["flux_snr"]["median"]
                for b in nominal["bins"]
                if b["flux_snr"]["median"] > 0
            ]
            lines.append(
                "\n**How much could velocity add in principle?** In the ideal-observer analysis (nominal "
                "noise) "
                f"the velocity channel carries {min(ratios):.2f}–{max(ratios):.2f} of the flux channel's "
                f"matched-filter S/N at every mass, i.e. flux + velocity together reach "
                f"{np.sqrt(1 + min(ratios) ** 2):.2f}–{np.sqrt(1 + max(ratios) ** 2):.2f} times the S/N of "
                "flux "
                "alone: a real but small gain, comparable to observing ~"
                f"{(1 + min(ratios) ** 2 - 1) * 100:.0f}–{(1 + max(ratios) ** 2 - 1) * 100:.0f} % longer."
            )
    ctrl = r.s.get("control")
    if ctrl:
        lines.append(
            "\n**With the macro model known (control study)**, the same architectures on images that differ "
            "only by the subhalo and the noise — dual-stream − baseline AUC:"
        )
        for cname, c in ctrl["conditions"].items():
            comp = pair(c, "baseline", "dual_stream")
            if comp:
                lines.append(
                    f"- `{cname}`: baseline {fmt_ci(c['variants']['baseline']['auc'])}, dual-stream "
                    f"{fmt_ci(c['variants']['dual_stream']['auc'])}, Δ {fmt_ci(comp['auc'], True)} → "
                    f"{verdict(comp['auc'])}."
                )
        cab = r.s.get("control_ablations")
        if cab:
            for cname, c in cab["conditions"].items():
                for a, b in (
                    ("dual_shuffled", "dual_stream"),
                    ("baseline", "dual_shuffled"),
                    ("baseline", "velocity_only"),
                ):
                    comp = pair(c, a, b)
                    if comp:
                        lines.append(
                            f"- control ablation `{cname}`: {b} − {a} Δ {fmt_ci(comp['auc'], True)} → "
                            f"{verdict(comp['auc'])}."
                        )
    ml = r.s.get("mask_leak")
    if ml and ml["mask_leak"].get("version") == 2:
        conds = ml["mask_leak"]["conditions"]
        cells = ", ".join(
            f"`{k}` {fmt_ci(e['velocity_chi2_shuffled'])}" for k, e in conds.items() if "noiseless" not in k
        )
        lines.append(
            "\n**Leak checks** (section *Leak checks*): a shuffled sample's velocity and mask at AUC "
            f"{cells}."
        )
    elif ml:
        cells = ", ".join(f"`{k}` {fmt_ci(e['auc'])}" for k, e in ml["mask_leak"].items())
        lines.append(
            "\n**Caveat exposed by the control — a mask leak.** The velocity channel is zero outside a mask "
            "computed on the noiseless flux. In the control setting the mask alone separates the classes "
            f"with AUC {cells} (section *Mask leak*),"
            " so the control's velocity gains cannot be attributed to the "
            "kinematics."
        )
    com = r.s.get("control_observed_mask")
    if com:
        lines.append(
            "\n**The control again, with the mask computed on the noisy flux** (`noise.mask_from=observed`, "
            "the default since this finding; section *Control with the observed mask*):"
        )
        for cname, c in com["conditions"].items():
            pairs = (
                ("baseline", "dual_stream"),
                ("baseline", "dual_shuffled"),
                ("dual_shuffled", "dual_stream"),
            )
            for a, b in pairs:
                comp = pair(c, a, b)
                if comp:
                    lines.append(
                        f"- `{cname}`: {b} − {a} Δ {fmt_ci(comp['auc'], True)} → {verdict(comp['auc'])}."
                    )
    nr = r.s.get("near_real")
    if nr:
        for plateifu, g in nr["near_real"]["galaxies"].items():
            parts = []
            for v, e in g["variants"].items():
                d = max(abs(e[c]["mean"] - e["none"]["mean"]) for c in e if c != "none")
                parts.append(f"{v} P(sub) = {e['none']['mean']:.4f} without a subhalo, max |ΔP| = {d:.1e}")
            lines.append(
                f"\n**Near-real MaNGA {plateifu}** behind a theta_E = 1 arcsec lens: "
                + "; ".join(parts)
                + " over all subhalo cases — neither trained model "
                "responds to the subhalo on this real source."
                if all(
                    max(abs(e[c]["mean"] - e["none"]["mean"]) for c in e if c != "none") < 0.01
                    for e in g["variants"].values()
                )
                else f"\n**Near-real MaNGA {plateifu}**: " + "; ".join(parts) + " (see *Study 6*)."
            )
    ab = r.s.get("ablations")
    if ab:
        for cname, c in ab["conditions"].items():
            comp = pair(c, "baseline", "dual_shuffled")
            if comp:
                inside = comp["auc"]["ci"][0] <= 0 <= comp["auc"]["ci"][1]
                lines.append(
                    f"\n**Shuffled velocities** (`{cname}`): shuffled − baseline ΔAUC "
                    f"{fmt_ci(comp['auc'], True)}"
                    + (
                        " — within the interval of the baseline, as expected."
                        if inside
                        else " — NOT within the interval of the baseline (see *Ablations*)."
                    )
                )
    lines.append(
        "\nHow to read it: an interval that contains 0 means this experiment cannot tell the two models "
        "apart; an AUC interval that contains 0.5 means no detection at this scale. Verdicts are computed "
        "from the intervals by `lensml/report.py`, not written by hand.\n"
    )
    r.add("\n".join(lines))


def _signal_v2_finding(res: Mapping[str, Any]) -> str:
    nominal = res["noise"].get("nominal") or next(iter(res["noise"].values()))
    floors = list(nominal["bins"][0]["velocity"])
    parts = []
    for f in floors:
        g = [b["velocity"][f]["gain"]["median"] for b in nominal["bins"]]
        parts.append(f"x{min(g):.2f}–{max(g):.2f} at a {f} km/s floor")
    return (
        "\n**How much could velocity add in principle?** An ideal observer who knows the unperturbed image "
        "(nominal noise, line-width velocity errors) gains a median factor " + ", ".join(parts) + " in S/N "
        "over flux alone (section *Signal*). The gain is set by the velocity floor, not by the subhalo mass."
    )

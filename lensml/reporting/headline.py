"""The ``headline`` study's sections (baseline vs dual-stream per mass bin, detection rate vs mass and
distance from the arc) and the example test maps (``examples.npz`` beside the summaries)."""

from __future__ import annotations

import numpy as np

from lensml.analysis import plots
from lensml.analysis.markdown import fmt_ci, md_table
from lensml.reporting.core import Report
from lensml.reporting.tables import above, comparison_table, fmt_seeds


def render_examples(r: Report) -> None:
    p = r.summary_dir / "examples.npz"
    if not p.exists():
        return
    with np.load(p) as z:
        ex = {k: (z[k].astype(np.float32) if z[k].dtype == np.float16 else z[k]) for k in z.files}
    r.add("## Example simulated test maps\n")
    r.add(
        "Nominal noise; cyan + marks the subhalo (mass in the title). Velocity shown inside the mask only. "
        "The first panel is a test sample without a subhalo; the others are the first positive of each "
        "mass-bin test set — the same lens and source (the subhalo is drawn last),"
        " so only the subhalo mass changes.\n"
    )
    r.fig("examples.png", plots.examples_figure(ex, float(ex.get("pixel_scale_arcsec", 0.05))), "examples")


def render_headline(r: Report) -> None:
    h = r.s.get("headline")
    if not h:
        return
    r.section("Study 1 — headline: baseline vs dual-stream per mass bin", h)
    r.add(comparison_table(h["conditions"], "baseline", "dual_stream"))
    rows = [
        [
            f"`{cname}`",
            fmt_seeds(c["variants"]["baseline"]["auc"]),
            fmt_seeds(c["variants"]["dual_stream"]["auc"]),
        ]
        for cname, c in h["conditions"].items()
    ]
    header = ["test condition", "baseline seeds", "dual-stream seeds"]
    r.add("\nPer-seed AUC (seed spread):\n\n" + md_table(header, rows) + "\n")
    null = h.get("null_condition")
    if null:
        r.add(
            f"**Above the no-signal floor?** `{null}` subhalos carry almost no signal "
            "(ideal-observer S/N ~0.1), "
            f"so AUC(`{null}`) is the level a model reaches without detecting subhalos on this test set (the "
            "test sets share their negatives and every sample's lens and source; only the subhalo mass "
            f"changes). Paired AUC(bin) − AUC(`{null}`), same resampled indices:\n"
        )
        rows = [
            [
                f"`{cname}`",
                *(f"{fmt_ci(vn.get(v), True)} ({above(vn.get(v))})" for v in ("baseline", "dual_stream")),
            ]
            for cname, c in h["conditions"].items()
            if (vn := c.get("vs_null") or {})
        ]
        r.add(md_table(["test condition", "baseline", "dual-stream"], rows) + "\n")
    conds = h["conditions"]
    r.fig("roc_headline.png", plots.rocs_grid(conds, {k: k for k in conds}), "ROC curves per mass bin")
    r.fig("auc_vs_mass.png", plots.metric_vs_condition(conds, list(conds)), "AUC per mass bin")
    r.fig(
        "recall_vs_mass.png",
        plots.metric_vs_condition(conds, list(conds), "recall_at_fpr5", "recall at FPR 5%", chance=0.05),
        "recall per mass bin",
    )


def render_sensitivity(r: Report) -> None:
    h = r.s.get("headline")
    if not h or "sensitivity" not in h:
        return
    sens = h["sensitivity"]
    r.add("## Study 7 — sensitivity: detection rate at fixed FPR vs mass and vs distance from the arc\n")
    r.add(
        f"Threshold per seed and test set at FPR ≤ {sens['fpr']:.0%} (set on that test set's negatives); "
        "rate = "
        "mean over seeds and positives in the bin; band/bars: bootstrap 95 % over positives. Distance = from "
        "the subhalo to the nearest pixel of the arc mask (0 = on the arc). A rate at the dotted line "
        "(= the FPR) is no detection.\n"
    )
    dconds = [c for c in sens["conditions"] if any(c in v["vs_distance"] for v in sens["variants"].values())]
    r.fig("sensitivity.png", plots.sensitivity_figure(sens, dconds), "detection vs mass and distance")
    rows = []
    first = next(iter(sens["variants"].values()))["vs_mass"]
    for i, (a, b) in enumerate(zip(first["edges"][:-1], first["edges"][1:])):
        cells = []
        for v in sens["variants"].values():
            c = v["vs_mass"]
            cells.append(
                "–"
                if c["rate"][i] is None
                else f"{c['rate'][i]:.3f} [{c['lo'][i]:.3f}, {c['hi'][i]:.3f}] ({c['n'][i]})"
            )
        rows.append([f"{a:.2f}–{b:.2f}", *cells])
    header = ["log10 M200 bin", *(f"rate {v} [95% CI] (n)" for v in sens["variants"])]
    r.add(md_table(header, rows) + "\n")

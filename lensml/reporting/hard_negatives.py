"""The ``hard_negatives`` study's section: the false-positive rate of each detector under lens multipoles and
source clumps at the threshold set on clean data (``lensml.analysis.false_positives``), and AUC per
condition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lensml.analysis.markdown import fmt_ci, md_table
from lensml.reporting.core import Report


def markdown_section(summary: Mapping[str, Any]) -> str:
    """The section body of a study with a ``false_positives`` summary: the FPR table, then per condition
    AUC per variant (from the study's ``conditions``)."""
    fp = summary["false_positives"]
    conds = fp["conditions"]
    variants = list(next(iter(conds.values()))["variants"])
    pairs = [(c["a"], c["b"]) for c in next(iter(conds.values()))["comparisons"]]
    rows = [
        [f"`{c}`", *(fmt_ci(e["variants"][v]) for v in variants)]
        + [fmt_ci(x, signed=True) for x in e["comparisons"]]
        for c, e in conds.items()
    ]
    header = ["test condition (negatives)", *variants, *(f"{b} − {a}" for a, b in pairs)]
    text = (
        f"False-positive rate of each detector at the threshold giving {100 * fp['fpr_reference']:.0f} % "
        f"false positives on `{fp['reference']}` (seed-averaged; 95 % bootstrap over the negatives, "
        "threshold held fixed); last columns: paired differences.\n\n" + md_table(header, rows) + "\n"
    )
    auc_rows = []
    for c, e in summary.get("conditions", {}).items():
        auc_rows.append([f"`{c}`", *(fmt_ci(e["variants"].get(v, {}).get("auc")) for v in variants)])
    if auc_rows:
        text += "\nROC AUC per test condition:\n\n" + md_table(["test condition", *variants], auc_rows) + "\n"
    return text


def _diff_verdict(d: Mapping[str, Any], lower_is_better: bool) -> str:
    lo, hi = d["ci"]
    if lo <= 0 <= hi:
        return "no significant difference"
    better = (hi < 0) if lower_is_better else (lo > 0)
    return "better" if better else "worse"


def _auc_with_seeds(m: Mapping[str, Any]) -> str:
    return f"{m['value']:.3f} (" + ", ".join(f"{x:.3f}" for x in m["seed_values"]) + ")"


def answers(summary: Mapping[str, Any]) -> list[str]:
    """The study's answer as data-driven lines: for each compared pair (b vs a), the conditions where b's
    false-positive rate is significantly lower / higher (paired interval excludes 0), and the paired AUC
    differences with the seed values (the intervals cover test samples, not the seed spread)."""
    fp = summary["false_positives"]["conditions"]
    pairs = [(c["a"], c["b"]) for c in next(iter(fp.values()))["comparisons"]]
    lines = []
    for a, b in pairs:
        lower, higher = [], []
        for cond, e in fp.items():
            comp = next(x for x in e["comparisons"] if x["a"] == a and x["b"] == b)
            v = _diff_verdict(comp, lower_is_better=True)
            if v != "no significant difference":
                (lower if v == "better" else higher).append(f"`{cond}` {fmt_ci(comp, signed=True)}")
        auc = []
        for cond, e in summary.get("conditions", {}).items():
            comp = next((x for x in e.get("comparisons", []) if x["a"] == a and x["b"] == b), None)
            if comp is None:
                continue
            seeds = " / ".join(_auc_with_seeds(e["variants"][v]["auc"]) for v in (a, b))
            auc.append(f"`{cond}` {fmt_ci(comp['auc'], signed=True)} [{seeds}]")
        lines.append(
            f"- **{b} vs {a}**: false positives significantly lower on "
            + (", ".join(lower) if lower else "no condition")
            + "; higher on "
            + (", ".join(higher) if higher else "no condition")
            + ". Paired ΔAUC (AUC a / b, per seed): "
            + "; ".join(auc)
            + "."
        )
    return lines


def render(r: Report) -> None:
    s = r.s.get("hard_negatives")
    if not s or not s.get("false_positives"):
        return
    r.section("Hard negatives: lens multipoles and source clumps", s, scale=True)
    r.add(markdown_section(s))
    r.add(
        "What the intervals say (paired differences; an interval that excludes 0 is a verdict; the seed "
        "values show whether the network seeds agree):\n\n" + "\n".join(answers(s)) + "\n"
    )

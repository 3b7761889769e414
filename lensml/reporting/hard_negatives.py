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


def render(r: Report) -> None:
    s = r.s.get("hard_negatives")
    if not s or not s.get("false_positives"):
        return
    r.section("Hard negatives: lens multipoles and source clumps", s, scale=True)
    r.add(markdown_section(s))

"""Markdown tables shared by the study sections, and verdicts computed from 95 % intervals.

A comparison entry (``summary["conditions"][c]["comparisons"][i]``) holds the paired difference b − a of two
variants on identical test sets: ``{"a", "b", "auc": {"value", "ci"}, "recall_at_fpr5": {...}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lensml.analysis.markdown import fmt_ci, md_table


def fmt_seeds(m: Mapping[str, Any]) -> str:
    """The per-seed values of a statistic, comma-separated (3 decimals)."""
    return ", ".join(f"{v:.3f}" for v in m["seed_values"])


def verdict(d: Mapping[str, Any]) -> str:
    """Verdict of a paired difference b − a from its interval."""
    lo, hi = d["ci"]
    if lo > 0:
        return "better (interval > 0)"
    if hi < 0:
        return "worse (interval < 0)"
    return "no significant difference"


def above(d: Mapping[str, Any] | None) -> str:
    """Verdict of a paired difference against the no-signal condition."""
    if not d:
        return "n/a"
    return "above the floor" if d["ci"][0] > 0 else ("below" if d["ci"][1] < 0 else "not above the floor")


def detects(m: Mapping[str, Any]) -> bool:
    """True if an AUC interval lies above 0.5 (the model detects better than chance)."""
    return m.get("value") is not None and m["ci"][0] > 0.5


def pair(c: Mapping[str, Any], a: str, b: str) -> dict[str, Any] | None:
    """The comparison b − a of condition ``c``, or None."""
    return next((x for x in c["comparisons"] if x["a"] == a and x["b"] == b), None)


def cond_label(name: str, overrides: Sequence[str]) -> str:
    return f"`{name}`" + (f" ({', '.join(overrides)})" if overrides else "")


def comparison_table(
    cond_sums: Mapping[str, Any], a: str, b: str, labels: Mapping[str, str] | None = None
) -> str:
    """Markdown: per condition, AUC and recall@FPR5% of a and b (95 % CI) and the paired b - a."""
    header = [
        "test condition",
        f"AUC {a}",
        f"AUC {b}",
        f"ΔAUC ({b} − {a})",
        f"recall@5%FPR {a}",
        f"recall@5%FPR {b}",
        "Δrecall",
        "verdict (AUC)",
    ]
    rows = []
    for cname, c in cond_sums.items():
        va, vb = c["variants"].get(a), c["variants"].get(b)
        comp = pair(c, a, b)
        if va is None or vb is None or comp is None:
            continue
        label = (labels or {}).get(cname) or cond_label(cname, c.get("overrides", []))
        rows.append(
            [
                label,
                fmt_ci(va["auc"]),
                fmt_ci(vb["auc"]),
                fmt_ci(comp["auc"], True),
                fmt_ci(va["recall_at_fpr5"]),
                fmt_ci(vb["recall_at_fpr5"]),
                fmt_ci(comp["recall_at_fpr5"], True),
                verdict(comp["auc"]),
            ]
        )
    return md_table(header, rows)


def variants_table(cond_sums: Mapping[str, Any], variants: Sequence[str]) -> str:
    """Markdown: per condition, the AUC (95 % CI) of each variant ("–" where it was not tested)."""
    rows = []
    for cname, c in cond_sums.items():
        cells = [fmt_ci(c["variants"][v]["auc"]) if v in c["variants"] else "–" for v in variants]
        rows.append([cond_label(cname, c.get("overrides", [])), *cells])
    return md_table(["test condition", *(f"AUC {v}" for v in variants)], rows)


def paired_table(cond_sums: Mapping[str, Any]) -> str:
    """Markdown: every paired comparison b − a of every condition (ΔAUC, Δrecall@5%FPR, verdict)."""
    rows = [
        [
            f"`{cname}`",
            f"{comp['b']} − {comp['a']}",
            fmt_ci(comp["auc"], True),
            fmt_ci(comp["recall_at_fpr5"], True),
            verdict(comp["auc"]),
        ]
        for cname, c in cond_sums.items()
        for comp in c["comparisons"]
    ]
    header = ["test condition", "comparison", "ΔAUC [95% CI]", "Δrecall@5%FPR", "verdict"]
    return md_table(header, rows)


def reference_of(cname: str, cond_sums: Mapping[str, Any], default: str) -> str:
    """The unshifted condition of ``cname``: its name up to the first ``_`` if that condition exists
    (``m1e10_low_snr`` -> ``m1e10``), else ``default``."""
    base = cname.split("_")[0]
    return base if base in cond_sums else default


def degradation_table(cond_sums: Mapping[str, Any], ref: str, variants: Sequence[str]) -> str:
    """AUC drop from each condition's reference (``reference_of``), per variant (point values; intervals in
    the other tables)."""
    rows = []
    default = ref
    for cname, c in cond_sums.items():
        ref = reference_of(cname, cond_sums, default)
        if cname == ref:
            continue
        cells = [f"`{ref}`"]
        for v in variants:
            r, e = cond_sums[ref]["variants"].get(v), c["variants"].get(v)
            cells.append(f"{r['auc']['value'] - e['auc']['value']:+.3f}" if r and e else "–")
        rows.append([cond_label(cname, c.get("overrides", [])), *cells])
    return md_table(["test condition", "reference", *(f"AUC drop {v}" for v in variants)], rows)

"""The robustness studies' sections: ``instrument_shift`` (broader PSF, lower S/N), ``velocity_degradation``
(coarse velocity grid) and ``domain_shift`` (source population): each model's AUC and its drop from the
unshifted test set."""

from __future__ import annotations

from lensml.analysis import plots
from lensml.reporting.core import Report
from lensml.reporting.tables import comparison_table, degradation_table


def render_shifts(r: Report) -> None:
    for key, title in (
        ("instrument_shift", "Study 3 — instrument shift (broader PSF, lower S/N)"),
        ("velocity_degradation", "Study 4 — velocity degradation (coarse velocity grid)"),
    ):
        s = r.s.get(key)
        if not s:
            continue
        r.section(title, s)
        r.add(comparison_table(s["conditions"], "baseline", "dual_stream"))
        ref = next(iter(s["conditions"]))
        r.add("\nAUC drop relative to the unshifted test set (which model degrades less? smaller drop):\n")
        r.add(degradation_table(s["conditions"], ref, ["baseline", "dual_stream"]) + "\n")
        conds = s["conditions"]
        r.fig(f"{key}.png", plots.metric_vs_condition(conds, list(conds)), title)


def render_domain(r: Report) -> None:
    s = r.s.get("domain_shift")
    if not s:
        return
    r.section("Study 2 — domain shift in the source", s)
    r.add(comparison_table(s["conditions"], "baseline", "dual_stream"))
    ref = next(iter(s["conditions"]))
    r.add(f"\nAUC drop relative to `{ref}`:\n")
    r.add(degradation_table(s["conditions"], ref, ["baseline", "dual_stream"]) + "\n")
    conds = s["conditions"]
    r.fig("domain_shift.png", plots.metric_vs_condition(conds, list(conds)), "domain shift")

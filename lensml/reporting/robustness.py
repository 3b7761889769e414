"""The robustness studies' sections: ``instrument_shift`` (broader PSF, lower S/N), ``velocity_degradation``
(coarse velocity grid) and ``domain_shift`` (source population) of v1, and ``robustness_resnet`` (all of them
on the v2 headline detectors): each model's AUC and its drop from the unshifted test set (the first
condition)."""

from __future__ import annotations

from lensml.analysis import plots
from lensml.reporting.core import Report
from lensml.reporting.tables import comparison_table, degradation_table

V1_PAIR = ("baseline", "dual_stream")
V2_PAIR = ("flux", "flux_velocity")


def _shift_section(
    r: Report, key: str, title: str, pair: tuple[str, str], note: str, fig_title: str | None = None
) -> None:
    """Heading, the paired comparison per condition, the AUC drops and the AUC-per-condition figure."""
    s = r.s.get(key)
    if not s:
        return
    r.section(title, s)
    r.add(comparison_table(s["conditions"], *pair))
    conds = s["conditions"]
    ref = next(iter(conds))
    r.add(note.format(ref=ref))
    r.add(degradation_table(conds, ref, list(pair)) + "\n")
    r.fig(f"{key}.png", plots.metric_vs_condition(conds, list(conds)), fig_title or title)


def render_shifts(r: Report) -> None:
    note = "\nAUC drop relative to the unshifted test set (which model degrades less? smaller drop):\n"
    _shift_section(
        r, "instrument_shift", "Study 3 — instrument shift (broader PSF, lower S/N)", V1_PAIR, note
    )
    _shift_section(
        r, "velocity_degradation", "Study 4 — velocity degradation (coarse velocity grid)", V1_PAIR, note
    )


def render_domain(r: Report) -> None:
    _shift_section(
        r,
        "domain_shift",
        "Study 2 — domain shift in the source",
        V1_PAIR,
        "\nAUC drop relative to `{ref}`:\n",
        "domain shift",
    )


def render_v2(r: Report) -> None:
    _shift_section(
        r,
        "robustness_resnet",
        "Robustness (v2): instrument, velocity and source shifts",
        V2_PAIR,
        "\nAUC drop relative to `{ref}` (which model degrades less? smaller drop; the velocity shifts "
        "leave the flux map, hence flux only, unchanged):\n",
    )

"""The report's sections in order, and ``build_report``, which walks them.

A new study adds its section module (``render(r: Report) -> None``, nothing when its summary is absent) and
one ``Section`` line here; its summary ``<study>.json`` is then loaded and its command listed under
*Reproduce*. v1's studies and their order are frozen in ``core.V1_STUDIES`` so v1 is reproduced exactly.
"""

from __future__ import annotations

from pathlib import Path

from lensml.atomic_io import write_text
from lensml.reporting import (
    ablations_v2,
    answer_v2,
    control,
    findings,
    forecast,
    hard_negatives,
    headline,
    headline_v2,
    limitations,
    near_real,
    overview,
    reproduce,
    robustness,
    signal,
)
from lensml.reporting.core import V1_STUDIES, V1_TRAINED, Report, Section, load_summaries

SECTIONS: tuple[Section, ...] = (
    Section(overview.render_title),
    Section(findings.render),
    Section(answer_v2.render, ("headline_resnet",)),
    Section(overview.render_scale),
    Section(overview.render_pipeline),
    Section(signal.render, ("signal",)),
    Section(headline.render_examples),
    Section(headline.render_headline, ("headline",), trained=True),
    Section(headline.render_sensitivity),
    Section(headline_v2.render, ("headline_resnet",), trained=True),
    Section(headline_v2.render_long, ("headline_resnet_long",), trained=True),
    Section(robustness.render_v2, ("robustness_resnet",)),
    Section(ablations_v2.render, ("ablations_resnet",), trained=True),
    Section(near_real.render_v2, ("near_real_resnet",)),
    Section(control.render_control, ("control",), trained=True),
    Section(control.render_control_ablations, ("control_ablations",), trained=True),
    Section(control.render_mask_leak, ("mask_leak",)),
    Section(control.render_control_observed, ("control_observed_mask",), trained=True),
    Section(robustness.render_shifts, ("instrument_shift", "velocity_degradation")),
    Section(control.render_ablations, ("ablations",), trained=True),
    Section(robustness.render_domain, ("domain_shift",), trained=True),
    Section(near_real.render, ("near_real",)),
    Section(hard_negatives.render, ("hard_negatives",), trained=True),
    Section(forecast.render, ("forecast",)),
    Section(limitations.render),
    Section(reproduce.render),
)


def studies(sections: tuple[Section, ...] | None = None) -> tuple[str, ...]:
    """Every study the report reads (``SECTIONS`` by default), in load order: v1's, then the later ones in
    section order."""
    secs = SECTIONS if sections is None else sections
    later = [s for sec in secs for s in sec.studies if s not in V1_STUDIES]
    return V1_STUDIES + tuple(dict.fromkeys(later))


def trained_studies(sections: tuple[Section, ...] | None = None) -> tuple[str, ...]:
    """The studies with their own training runs: v1's in their frozen order, then the later ones."""
    secs = SECTIONS if sections is None else sections
    later = [s for sec in secs if sec.trained for s in sec.studies if s not in V1_TRAINED]
    return V1_TRAINED + tuple(dict.fromkeys(later))


def build_report(summary_dir: Path, out_dir: Path, name: str) -> Path:
    """Write ``out_dir/README.md`` and ``out_dir/figures/*.png`` from the summaries; return README's path."""
    r = Report(
        out_dir, load_summaries(summary_dir, studies()), summary_dir, name, V1_STUDIES, trained_studies()
    )
    for sec in SECTIONS:
        sec.render(r)
    path = out_dir / "README.md"
    write_text(path, "\n".join(r.md))
    return path

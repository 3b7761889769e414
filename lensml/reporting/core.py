"""The report's accumulator, its summaries and the record of one section.

A section renderer is ``render(r: Report) -> None``: it reads ``r.s[<study>]`` (the study summary written by
``python -m lensml.study``) and appends Markdown (``r.add``, ``r.section``) and figures (``r.fig``);
it renders nothing when its summary is absent.
``lensml.reporting.registry.SECTIONS`` lists them in report order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lensml.analysis import plots
from lensml.atomic_io import save_figure

#: the v1 studies, in the order their summaries are loaded (scale lines and *Reproduce* commands follow it);
#: listed as "not in this report" when absent. Frozen: v1 is reproduced from it. Later studies are named by
#: their ``Section`` in ``registry.SECTIONS`` and loaded after these.
V1_STUDIES = (
    "signal",
    "control",
    "control_ablations",
    "mask_leak",
    "control_observed_mask",
    "headline",
    "sensitivity",
    "instrument_shift",
    "velocity_degradation",
    "ablations",
    "domain_shift",
    "near_real",
)
#: the v1 studies with their own training runs, in the order of the training-curve figure. Frozen, as above;
#: later trained studies are marked ``trained=True`` in their ``Section``.
V1_TRAINED = (
    "headline",
    "ablations",
    "domain_shift",
    "control",
    "control_ablations",
    "control_observed_mask",
)


class Report:
    """Accumulates Markdown sections and figures into ``out_dir``.

    ``s``: study name -> summary; ``name``: the report's name (``reports/<name>``); ``expected``: studies
    listed as missing when absent; ``trained``: studies with their own training runs (scale lines, curves).
    """

    def __init__(
        self,
        out_dir: Path,
        summaries: dict[str, dict[str, Any]],
        summary_dir: Path,
        name: str = "",
        expected: Sequence[str] = V1_STUDIES,
        trained: Sequence[str] = V1_TRAINED,
    ) -> None:
        self.out_dir = out_dir
        self.fig_dir = out_dir / "figures"
        self.s = summaries
        self.summary_dir = summary_dir
        self.name = name
        self.expected = tuple(expected)
        self.trained = tuple(trained)
        self.md: list[str] = []

    def fig(self, name: str, figure: Any, alt: str) -> None:
        save_figure(self.fig_dir / name, figure)
        plots.plt.close(figure)
        self.md.append(f"![{alt}](figures/{name})\n")

    def add(self, text: str) -> None:
        self.md.append(text.rstrip() + "\n")

    def section(self, title: str, summary: Mapping[str, Any], scale: bool = False) -> None:
        """A study's heading, its one command and description (and its scale line if ``scale``)."""
        self.add(f"## {title}\n")
        self.add(f"Command: `{summary['command']}`. {summary['description']}\n")
        if scale:
            self.add(f"Scale: {scale_line(summary)}.\n")


Renderer = Callable[[Report], None]


@dataclass(frozen=True)
class Section:
    """One entry of the report: its renderer, the study summaries it reads (``<study>.json``, loaded if
    present) and whether those studies train their own networks (listed under *Scale*, training curves)."""

    render: Renderer
    studies: tuple[str, ...] = ()
    trained: bool = False


def load_summaries(summary_dir: Path, names: Sequence[str] = V1_STUDIES) -> dict[str, dict[str, Any]]:
    """``<summary_dir>/<name>.json`` for each of ``names`` that exists, in that order."""
    out = {}
    for name in names:
        p = summary_dir / f"{name}.json"
        if p.exists():
            out[name] = json.loads(p.read_text())
    return out


def own_runs(s: Mapping[str, Any]) -> dict[str, Any]:
    """A study's own runs (an ablation study also lists the re-used baseline/dual-stream runs)."""
    runs = s.get("runs", {}) or {}
    if str(s.get("study", "")).endswith("ablations"):
        return {k: v for k, v in runs.items() if v.get("variant") not in ("baseline", "dual_stream")}
    return dict(runs)


def scale_line(s: Mapping[str, Any]) -> str:
    """One line: the study's data sizes, epochs, seeds and training wall time (min in total, s per run)."""
    sc = s["scale"]
    runs = own_runs(s)
    walls = [r.get("wall_time_s") or 0 for r in runs.values()]
    seeds = sorted({r.get("seed") for r in runs.values() if r.get("seed") is not None})
    return (
        f"n_train={sc['n_train']}, n_val={sc['n_val']}, n_test={sc['n_test']}, epochs={sc['epochs']}, "
        f"batch={sc['batch_size']}, seeds={seeds}; {len(walls)} runs, training wall time "
        f"{sum(walls) / 60:.1f} min in total (median {np.median(walls) if walls else 0:.0f} s per run)"
    )

"""The report's registry: v1's load and training-curve order stay frozen, and a new study is one Section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lensml.reporting import registry
from lensml.reporting.core import Report, Section


def test_study_order_reproduces_v1_then_the_later_studies() -> None:
    """The order the summaries are loaded in fixes the order of scale lines and *Reproduce* commands."""
    assert registry.studies() == (
        "signal", "control", "control_ablations", "mask_leak", "control_observed_mask", "headline",
        "sensitivity", "instrument_shift", "velocity_degradation", "ablations", "domain_shift", "near_real",
        "headline_resnet", "headline_resnet_long", "robustness_resnet", "ablations_resnet",
        "near_real_resnet", "hard_negatives", "forecast",
    )  # fmt: skip
    assert registry.trained_studies() == (
        "headline", "ablations", "domain_shift", "control", "control_ablations", "control_observed_mask",
        "headline_resnet", "headline_resnet_long", "ablations_resnet", "hard_negatives",
    )  # fmt: skip


def test_every_study_is_read_by_a_section() -> None:
    read = {s for sec in registry.SECTIONS for s in sec.studies}
    assert set(registry.studies()) - read == {"sensitivity"}  # part of the headline summary


def test_an_empty_summary_dir_gives_only_the_fixed_sections(tmp_path: Path) -> None:
    text = registry.build_report(tmp_path, tmp_path / "rep", "empty").read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Scale of these runs", "## Pipeline", "## Limitations", "## Reproduce"]
    assert "not in this report" in text and not (tmp_path / "rep" / "figures").exists()


def _toy(r: Report) -> None:
    s = r.s.get("toy")
    if not s:
        return
    r.section("Toy study", s)
    r.add(f"answer: {s['toy']['answer']}\n")


def test_a_new_study_is_one_section_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A section module's renderer plus one ``Section`` in the registry: its summary is loaded, rendered
    before *Limitations*, and its command is listed under *Reproduce*; it is not listed as missing."""
    sections = list(registry.SECTIONS)
    sections.insert(-2, Section(_toy, ("toy",)))
    monkeypatch.setattr(registry, "SECTIONS", tuple(sections))
    summary = {"command": "python -m lensml.study study=toy", "description": "A toy.", "toy": {"answer": 42}}
    (tmp_path / "toy.json").write_text(json.dumps(summary))
    text = registry.build_report(tmp_path, tmp_path / "rep", "toy").read_text()
    assert text.index("## Toy study") < text.index("## Limitations") < text.index("study=toy\n")
    assert "answer: 42" in text and "toy" not in text.split("not in this report")[1].split("\n")[0]


def test_the_longer_headline_renders_beside_the_headline(tmp_path: Path) -> None:
    """``headline_resnet_long`` reuses the headline's per-bin section and adds the AUC before → after table
    and both studies' learning curves (from a copy of the committed headline summary)."""
    committed = Path(__file__).parents[2] / "reports" / "v2" / "summaries" / "headline_resnet.json"
    head = json.loads(committed.read_text())
    long = {**head, "study": "headline_resnet_long", "fit_detect": None,
            "scale": {**head["scale"], "n_train": 65536, "epochs": 16, "seeds": [0]}}
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "headline_resnet.json").write_text(json.dumps(head))
    (tmp_path / "s" / "headline_resnet_long.json").write_text(json.dumps(long))
    text = registry.build_report(tmp_path / "s", tmp_path / "rep", "t").read_text()
    assert "## Headline (v2) trained longer: 1.05M samples per run" in text
    assert "AUC after 229k samples (`headline_resnet`, 3 seeds) → after 1.05M (1 seed)" in text
    assert (tmp_path / "rep" / "figures" / "headline_long_learning_curves.png").exists()
    assert "differ in their head" not in text
    head["runs"] = {k: {key: x for key, x in v.items() if key != "head_norm"}  # a summary from before the key
                    for k, v in head["runs"].items()}
    long["runs"] = {k: {**v, "head_norm": "batch"} for k, v in long["runs"].items()}
    (tmp_path / "s" / "headline_resnet.json").write_text(json.dumps(head))
    (tmp_path / "s" / "headline_resnet_long.json").write_text(json.dumps(long))
    text = registry.build_report(tmp_path / "s", tmp_path / "rep", "t").read_text()
    assert "differ in their head as well (`model.net.head_norm`: none → batch)" in text

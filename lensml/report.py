"""Build ``reports/<name>/README.md`` and figures from committed study summaries: ``python -m lensml.report``.

Reads ``<summary_dir>/<study>.json`` (+ ``examples.npz``, ``near_real_<plateifu>.npz``) written by
``python -m lensml.study``; needs no training outputs. Every number in the README is formatted from those
files (``fmt_ci``), so re-running this command reproduces the report exactly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from lensml.analysis import forecast_section, plots
from lensml.analysis.markdown import fmt_ci, md_table
from lensml.atomic_io import save_figure, write_text
from lensml.cli import clean_errors

log = logging.getLogger(__name__)

STUDIES = (
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
#: studies added after v1: rendered when their summary is present, not listed as missing (v1 stays identical)
LATER_STUDIES = ("hard_negatives", "forecast")
#: studies with their own training runs (scale and training curves are listed for these)
TRAINED_STUDIES = (
    "headline", "ablations", "domain_shift", "control", "control_ablations", "control_observed_mask",
    "hard_negatives",
)


def fmt_seeds(m: Mapping[str, Any]) -> str:
    return ", ".join(f"{v:.3f}" for v in m["seed_values"])


def verdict(d: Mapping[str, Any]) -> str:
    lo, hi = d["ci"]
    if lo > 0:
        return "better (interval > 0)"
    if hi < 0:
        return "worse (interval < 0)"
    return "no significant difference"


def load_summaries(summary_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for name in (*STUDIES, *LATER_STUDIES):
        p = summary_dir / f"{name}.json"
        if p.exists():
            out[name] = json.loads(p.read_text())
    return out


def _cond_label(name: str, overrides: Sequence[str]) -> str:
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
        comp = next((x for x in c["comparisons"] if x["a"] == a and x["b"] == b), None)
        if va is None or vb is None or comp is None:
            continue
        label = (labels or {}).get(cname) or _cond_label(cname, c.get("overrides", []))
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
    rows = []
    for cname, c in cond_sums.items():
        cells = [fmt_ci(c["variants"][v]["auc"]) if v in c["variants"] else "–" for v in variants]
        rows.append([_cond_label(cname, c.get("overrides", [])), *cells])
    return md_table(["test condition", *(f"AUC {v}" for v in variants)], rows)


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
        rows.append([_cond_label(cname, c.get("overrides", [])), *cells])
    return md_table(["test condition", "reference", *(f"AUC drop {v}" for v in variants)], rows)


def own_runs(s: Mapping[str, Any]) -> dict[str, Any]:
    """A study's own runs (an ablation study also lists the re-used baseline/dual-stream runs)."""
    runs = s.get("runs", {}) or {}
    if str(s.get("study", "")).endswith("ablations"):
        return {k: v for k, v in runs.items() if v.get("variant") not in ("baseline", "dual_stream")}
    return dict(runs)


def scale_line(s: Mapping[str, Any]) -> str:
    sc = s["scale"]
    runs = own_runs(s)
    walls = [r.get("wall_time_s") or 0 for r in runs.values()]
    seeds = sorted({r.get("seed") for r in runs.values() if r.get("seed") is not None})
    return (
        f"n_train={sc['n_train']}, n_val={sc['n_val']}, n_test={sc['n_test']}, epochs={sc['epochs']}, "
        f"batch={sc['batch_size']}, seeds={seeds}; {len(walls)} runs, training wall time "
        f"{sum(walls) / 60:.1f} min in total (median {np.median(walls) if walls else 0:.0f} s per run)"
    )


class Report:
    """Accumulates markdown sections and figures into ``out_dir``."""

    def __init__(self, out_dir: Path, summaries: dict[str, dict[str, Any]], summary_dir: Path) -> None:
        self.out_dir = out_dir
        self.fig_dir = out_dir / "figures"
        self.s = summaries
        self.summary_dir = summary_dir
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


def _pixel_scale(s: Mapping[str, Any]) -> float:
    return float(s.get("pixel_scale_arcsec", 0.05))


def build_report(summary_dir: Path, out_dir: Path, name: str) -> Path:
    """Write ``out_dir/README.md`` and ``out_dir/figures/*.png`` from the summaries; return README's path."""
    sums = load_summaries(summary_dir)
    r = Report(out_dir, sums, summary_dir)
    rel = (
        summary_dir.resolve().relative_to(out_dir.resolve())
        if summary_dir.resolve().is_relative_to(out_dir.resolve())
        else summary_dir
    )
    r.add(f"# lensml report `{name}`: does the velocity channel help detect subhalos?\n")
    r.add(
        "Every number below is read from the run summaries in "
        f"[`{rel}`]({rel}) (written by `python -m lensml.study`); `python -m lensml.report name={name}` "
        "regenerates this file and its figures from them alone. Intervals are 95 % stratified-bootstrap "
        "percentile intervals over test samples (1000 resamples) of the **seed-averaged** statistic; "
        "paired differences use the same resampled indices for both models (identical test sets: one "
        "data seed). Per-seed values show the seed spread.\n"
    )
    _findings(r)
    _scale_section(r)
    _pipeline(r)
    _signal(r)
    _examples(r)
    _headline(r)
    _sensitivity(r)
    _control(r)
    _ablations(
        r, "control_ablations", "Control ablations — shuffled velocities and velocity only, known macro model"
    )
    _mask_leak(r)
    _control_observed(r)
    _robustness(r)
    _ablations(r)
    _domain(r)
    _near_real(r)
    _hard_negatives(r)
    forecast_section.add_section(r)
    _limitations(r)
    _reproduce(r, name)
    path = out_dir / "README.md"
    write_text(path, "\n".join(r.md))
    return path


def _h(s: Mapping[str, Any], cond: str) -> dict[str, Any] | None:
    return (s.get("conditions") or {}).get(cond)


def above(d: Mapping[str, Any] | None) -> str:
    """Verdict of a paired difference against the no-signal condition."""
    if not d:
        return "n/a"
    return "above the floor" if d["ci"][0] > 0 else ("below" if d["ci"][1] < 0 else "not above the floor")


def detects(m: Mapping[str, Any]) -> bool:
    """True if an AUC interval lies above 0.5 (the model detects better than chance)."""
    return m.get("value") is not None and m["ci"][0] > 0.5


def _pair(c: Mapping[str, Any], a: str, b: str) -> dict[str, Any] | None:
    return next((x for x in c["comparisons"] if x["a"] == a and x["b"] == b), None)


def _findings(r: Report) -> None:
    h = r.s.get("headline")
    if not h:
        return
    lines = ["## Findings\n"]
    cmp_lines, detected = [], {"baseline": [], "dual_stream": []}
    for cname, c in h["conditions"].items():
        comp = _pair(c, "baseline", "dual_stream")
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
            comp = _pair(c, "baseline", "dual_stream")
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
                    comp = _pair(c, a, b)
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
            pairs = (("baseline", "dual_stream"), ("baseline", "dual_shuffled"),
                     ("dual_shuffled", "dual_stream"))
            for a, b in pairs:
                comp = _pair(c, a, b)
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
            comp = _pair(c, "baseline", "dual_shuffled")
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


def _scale_section(r: Report) -> None:
    lines = [
        "## Scale of these runs\n",
        "All runs on CPU (2 cores shared), at the scale below; larger runs "
        "(GPU) would change the numbers, which is the point of committing the commands.\n",
    ]
    for name, s in r.s.items():
        if s.get("runs") and any(v.get("variant") for v in s["runs"].values()) and name in TRAINED_STUDIES:
            lines.append(
                f"- **{name}**: {scale_line(s)}. Common overrides: `{' '.join(s.get('common', []))}`."
            )
    machine = next((s.get("machine") for s in r.s.values() if s.get("machine")), "")
    lines.append(f"- machine: {machine}")
    missing = [k for k in STUDIES if k not in r.s and k != "sensitivity"]
    if missing:
        lines.append(f"- **not in this report** (no summary committed): {', '.join(missing)}")
    r.add("\n".join(lines))
    runs = {}
    for k in TRAINED_STUDIES:
        for n, v in (r.s.get(k, {}).get("runs") or {}).items():
            if k.endswith("ablations") and v.get("variant") in ("baseline", "dual_stream"):
                continue  # the headline's runs, re-used
            label = v.get("variant") if k == "headline" else f"{k}: {v.get('variant')}"
            runs[f"{k}/{n}"] = {**v, "variant": label}
    best = [
        f"{k.split('/')[-1]}: {v.get('best_checkpoint')}"
        for k, v in runs.items()
        if k.startswith("headline/")
    ]
    if best:
        r.add(
            "Checkpoint scored per headline run (highest validation AUC; `best-00` = after the first epoch, "
            "i.e. validation AUC never improved): " + ", ".join(best) + ".\n"
        )
    if any(v.get("val_auc_per_epoch") for v in runs.values()):
        r.add(
            "Validation AUC during training (validation set drawn from the training population), every run:\n"
        )
        r.fig("training_curves.png", plots.training_curves(runs), "validation AUC per epoch")


def _pipeline(r: Report) -> None:
    r.add("""## Pipeline

```mermaid
flowchart LR
  A[MaNGA DAP MAPS<br/>Ha flux + gas velocity] -->|lensml.prepare_sources| B[source tensors<br/>2 x 64 x 64]
  D[analytic rotating disks<br/>named priors] --> S
  B --> S[simulator<br/>SIE + shear + TNFW subhalo<br/>ray tracing, PSF, noise]
  S -->|flux, velocity, mask| C[(dataset cache)]
  C --> M1[baseline CNN<br/>flux]
  C --> M2[dual-stream CNN<br/>flux + velocity]
  M1 --> E[lensml.evaluate<br/>test conditions, bootstrap CIs]
  M2 --> E
  E --> R[lensml.study summaries] --> P[lensml.report]
```
""")


def _signal(r: Report) -> None:
    s = r.s.get("signal")
    if not s:
        return
    res = s["signal"]
    if res.get("version") == 2:
        _signal_v2(r, res)
        return
    r.add("## Signal: how much does a subhalo change each channel? (ideal observer)\n")
    r.add(
        f"Same draw rendered with and without its subhalo (noiseless), perturbation divided by the per-pixel "
        f"noise sigma of the noise model; {res['n_per_bin']} test draws per mass bin. `S/N` = matched-filter "
        "signal-to-noise sqrt(sum (delta/sigma)^2) — what an observer who knew the unperturbed image could "
        "reach; `max` = largest single-pixel |delta|/sigma. Medians [10th, 90th percentiles].\n"
    )
    for noise, block in res["noise"].items():
        header = [
            "M200 bin [M_sun]",
            "flux S/N",
            "velocity S/N",
            "flux max/σ",
            "velocity max/σ",
            "max abs Δflux / peak",
            "max abs Δv [km/s]",
        ]
        rows = []
        for b in block["bins"]:

            def q(k: str, bb: Mapping[str, Any] = b) -> str:
                return f"{bb[k]['median']:.3g} [{bb[k]['p10']:.2g}, {bb[k]['p90']:.2g}]"

            rows.append(
                [
                    f"{b['mass_bin']:.0e}",
                    q("flux_snr"),
                    q("velocity_snr"),
                    q("flux_max"),
                    q("velocity_max"),
                    q("flux_max_rel"),
                    q("velocity_max_kms"),
                ]
            )
        r.add(f"**noise={noise}**\n\n" + md_table(header, rows) + "\n")
    nominal = res["noise"].get("nominal") or next(iter(res["noise"].values()))
    r.fig(
        "signal.png",
        plots.signal_figure(
            {
                "bins": [
                    {"mass_bin": b["mass_bin"], "flux_snr": b["flux_snr"], "velocity_snr": b["velocity_snr"]}
                    for b in nominal["bins"]
                ]
            }
        ),
        "matched-filter S/N per channel vs mass",
    )
    ratios = [
        b["velocity_snr"]["median"] / b["flux_snr"]["median"]
        for b in nominal["bins"]
        if b["flux_snr"]["median"] > 0
    ]
    if ratios:
        gain = np.sqrt(1 + np.square(ratios))
        r.add(
            f"At the first noise setting the velocity channel's matched-filter S/N is {min(ratios):.2f}–"
            f"{max(ratios):.2f} times the flux channel's, so an ideal observer combining both gains a factor "
            f"{min(gain):.2f}–{max(gain):.2f} in S/N over flux alone: velocity *can* help, but only "
            "modestly, "
            "at this noise model.\n"
        )


def _q(m: Mapping[str, Any]) -> str:
    return f"{m['median']:.3g} [{m['p10']:.2g}, {m['p90']:.2g}]"


def _signal_v2(r: Report, res: Mapping[str, Any]) -> None:
    """The ideal-observer tables with the line-width velocity noise and the velocity-floor sweep."""
    floors = list(next(iter(res["noise"].values()))["bins"][0]["velocity"])
    r.add("## Signal: how much does a subhalo change each channel? (ideal observer)\n")
    r.add(
        "Same draw rendered with and without its subhalo (noiseless), perturbation divided by the per-pixel "
        "noise sigma (flux: Poisson + background; velocity: line-centroid error kappa sigma_line / SNR_pix "
        f"with a floor of {', '.join(floors)} km/s, `lensml/sim/velocity_noise.py`); {res['n_per_bin']} test "
        "draws per mass bin. `S/N` = matched-filter sqrt(sum (delta/sigma)^2): what an observer who knew the "
        "unperturbed image could reach (nothing marginalised); `gain` = sqrt(S/N_f^2 + S/N_v^2) / S/N_f, "
        "what the velocity channel adds to the flux. Medians [10th, 90th percentiles].\n"
    )
    for noise, block in res["noise"].items():
        header = ["M200 bin [M_sun]", "flux S/N", *(f"velocity S/N, floor {f}" for f in floors)]
        header += [f"gain, floor {f}" for f in floors]
        rows = [
            [f"{b['mass_bin']:.0e}", _q(b["flux_snr"])]
            + [_q(b["velocity"][f]["velocity_snr"]) for f in floors]
            + [_q(b["velocity"][f]["gain"]) for f in floors]
            for b in block["bins"]
        ]
        r.add(f"**noise={noise}**\n\n" + md_table(header, rows) + "\n")
    nominal = res["noise"].get("nominal") or next(iter(res["noise"].values()))
    r.fig("signal.png", plots.signal_floors_figure(nominal["bins"]), "matched-filter S/N per channel vs mass")


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


def _examples(r: Report) -> None:
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


def _headline(r: Report) -> None:
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


def _sensitivity(r: Report) -> None:
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


def _robustness(r: Report) -> None:
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


def _control(r: Report) -> None:
    s = r.s.get("control")
    if not s:
        return
    r.section("Control — known macro model (detectability limit of the architecture)", s, scale=True)
    r.add(comparison_table(s["conditions"], "baseline", "dual_stream"))
    conds = s["conditions"]
    r.fig("control.png", plots.metric_vs_condition(conds, list(conds)), "control study")


def _control_observed(r: Report) -> None:
    s = r.s.get("control_observed_mask")
    if not s:
        return
    r.section("Control with the observed mask — is the control's velocity gain kinematic?", s, scale=True)
    r.add(comparison_table(s["conditions"], "baseline", "dual_stream"))
    for a, b in (("baseline", "dual_shuffled"), ("dual_shuffled", "dual_stream")):
        r.add(f"\n{b} − {a}:\n")
        r.add(comparison_table(s["conditions"], a, b))
    conds = s["conditions"]
    fig = plots.metric_vs_condition(conds, list(conds))
    r.fig("control_observed_mask.png", fig, "control, observed mask")


def _mask_leak(r: Report) -> None:
    s = r.s.get("mask_leak")
    if not s:
        return
    if s["mask_leak"].get("version") == 2:
        _leak_checks(r, s)
        return
    r.section("Mask leak: what the velocity channel's zero region reveals", s)
    header = [
        "test condition",
        "AUC of the mask statistic [95% CI]",
        "negatives sharing one mask",
        "positives with a changed mask",
    ]
    rows = [
        [
            f"`{cname}`",
            fmt_ci(e["auc"]),
            f"{e['negatives_sharing_the_mask']:.3f}",
            f"{e['positives_with_changed_mask']:.3f}",
        ]
        for cname, e in s["mask_leak"].items()
    ]
    r.add(md_table(header, rows) + "\n")
    r.add(
        "The validity mask is computed on the *noiseless* flux and the velocity map is exactly 0 outside it, "
        "so the velocity input carries a noiseless isophote (5 % of the peak) of the lensed image. When the "
        "lens and source are fixed (control), any change of that isophote is a subhalo; a CNN can read it "
        "without using a single velocity value. The control's velocity gains above must be read with this in "
        "mind. With random lenses and sources (headline) the isophote is still noiseless information about "
        "the flux morphology, but not a direct detector. The v1 studies above ran with this idealised mask "
        "(`noise.mask_from=noiseless`, pinned in their experiment files); the simulator now computes the "
        "mask on the noisy observed flux by default (`noise.mask_from=observed`), see the next section.\n"
    )


#: leak_checks classifiers: (column title, key) in the order of the table
_LEAK_COLUMNS = (
    ("mask, Hamming", "mask_hamming"),
    ("mask, naive Bayes", "mask_bayes"),
    ("shuffled mask, naive Bayes", "mask_bayes_shuffled"),
    ("shuffled velocity χ²", "velocity_chi2_shuffled"),
    ("own velocity χ² (reference)", "velocity_chi2_paired"),
    ("flux χ² (reference)", "flux_chi2"),
    ("flux, naive Bayes (reference)", "flux_bayes"),
)


def _leak_checks(r: Report, s: Mapping[str, Any]) -> None:
    """The leak checks of ``lensml.analysis.leak_checks`` (summary version 2)."""
    r.section("Leak checks: what the mask and a shuffled velocity map reveal (control, no training)", s)
    conds = s["mask_leak"]["conditions"]
    rows = [[f"`{c}`", *(fmt_ci(e[k]) for _, k in _LEAK_COLUMNS)] for c, e in conds.items()]
    r.add(md_table(["condition (AUC [95% CI])", *(t for t, _ in _LEAK_COLUMNS)], rows) + "\n")
    n = next(iter(conds.values()))
    r.add(
        f"{n['n']} test and {n['n_train']} training samples per condition. The shuffled columns (velocity "
        "and mask of another sample, as in the `flux_shuffled_velocity` ablation) must be at chance; the "
        "`noiseless_mask` condition is the positive control (an idealised mask computed on the noiseless "
        "flux is a noise-free isophote and gives the subhalo away). With the observed mask, the mask is a "
        "threshold of the observed flux: it can tell no more than the flux itself (the flux columns), and "
        "where the subhalo's flux signal reaches the isophote a mask-only classifier is above chance without "
        "a leak.\n"
    )


def _ablations(
    r: Report, key: str = "ablations", title: str = "Study 5 — ablations: shuffled velocities, velocity only"
) -> None:
    s = r.s.get(key)
    if not s:
        return
    r.section(title, s)
    variants = [
        v
        for v in ("baseline", "dual_stream", "dual_shuffled", "velocity_only")
        if any(v in c["variants"] for c in s["conditions"].values())
    ]
    r.add(variants_table(s["conditions"], variants) + "\n")
    r.add("Paired differences:\n")
    rows = [
        [
            f"`{cname}`",
            f"{comp['b']} − {comp['a']}",
            fmt_ci(comp["auc"], True),
            fmt_ci(comp["recall_at_fpr5"], True),
            verdict(comp["auc"]),
        ]
        for cname, c in s["conditions"].items()
        for comp in c["comparisons"]
    ]
    header = ["test condition", "comparison", "ΔAUC [95% CI]", "Δrecall@5%FPR", "verdict"]
    r.add(md_table(header, rows) + "\n")
    checks = []
    for cname, c in s["conditions"].items():
        comp = next((x for x in c["comparisons"] if x["a"] == "baseline" and x["b"] == "dual_shuffled"), None)
        if comp:
            lo, hi = comp["auc"]["ci"]
            if lo <= 0 <= hi:
                why = "consistent with the baseline (interval contains 0)."
            elif lo > 0:
                why = (
                    "NOT within the interval of the baseline: the shuffled model is better. Possible "
                    "reasons (not tested here): the second stream adds capacity to the flux stream's "
                    "features, or the shuffled velocity maps still carry information about their own flux "
                    "partner (e.g. a shared mask geometry when the source and lens are nearly fixed)."
                )
            else:
                why = (
                    "NOT within the interval of the baseline: the shuffled model is worse. The mismatched "
                    "velocity map is not neutral: it carries its own sample's subhalo imprint and mask (see "
                    "*Mask leak*), i.e. evidence about another sample's label, which the network "
                    "must learn to ignore — a cost at this short training schedule."
                )
            checks.append(f"`{cname}`: shuffled − baseline ΔAUC {fmt_ci(comp['auc'], True)} → {why}")
    if checks:
        r.add("**Shuffled-velocity check** (expected to fall to the baseline): " + " ".join(checks) + "\n")
    conds = s["conditions"]
    r.fig(f"{key}.png", plots.metric_vs_condition(conds, list(conds)), key)


def _domain(r: Report) -> None:
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


def _near_real(r: Report) -> None:
    s = r.s.get("near_real")
    if not s:
        return
    nr = s["near_real"]
    spec = nr["spec"]
    r.section("Study 6 — near-real MaNGA cases", s)
    lens = spec["lens"]
    ms = spec["mass_msun"] if isinstance(spec["mass_msun"], list) else [spec["mass_msun"]]
    r.add(
        f"Lens: SIE theta_E = {lens['theta_E']} arcsec, e1 = {lens['e1']}, e2 = {lens['e2']}, shear "
        f"({lens['gamma1']}, {lens['gamma2']}); source span {spec['source_size_arcsec']} arcsec at offset "
        f"({spec['source_x_arcsec']}, {spec['source_y_arcsec']}) arcsec; subhalo TNFW M200 = "
        f"{', '.join(f'{float(m):.0e}' for m in ms)} M_sun. P(subhalo): mean over "
        f"{nr['occlusion']['n_noise']} noise realisations (the same ones for every case) and the seeds "
        "(± mean per-seed std over noise realisations).\n"
    )
    cases = nr.get("cases") or ["none", "on_arc", "off_arc"]
    for plateifu, g in nr["galaxies"].items():
        pos = g["subhalo_positions_arcsec"]
        title = (
            f"**{plateifu}** (subhalo on the arc at ({pos['on_arc']['x']:.2f}, {pos['on_arc']['y']:.2f}), "
            f"off the arc at ({pos['off_arc']['x']:.2f}, {pos['off_arc']['y']:.2f}) arcsec)\n"
        )
        moved = [c for c in cases if c != "none"]
        rows = [
            [
                v,
                f"{e['none']['mean']:.4f} ± {e['none']['std_noise']:.1e}",
                *(f"{e[c]['mean'] - e['none']['mean']:+.1e}" for c in moved),
            ]
            for v, e in g["variants"].items()
        ]
        header = ["model", "P(sub): none", *(f"ΔP: {c}" for c in moved)]
        r.add(title + "\n" + md_table(header, rows) + "\n")
        r.add(
            "ΔP = P(subhalo | case) − P(subhalo | no subhalo), same noise realisations."
            " Differences far below "
            "the noise spread, or a P(sub) that hardly moves at all, mean the network does not respond to "
            "this subhalo.\n"
        )
        p = r.summary_dir / f"near_real_{plateifu}.npz"
        if p.exists():
            with np.load(p) as z:
                arr = {k: z[k].astype(np.float32) for k in z.files}
            heavy = [c for c in cases if c != "none"][-2:]
            fig = plots.near_real_figure(
                arr,
                pos,
                list(g["variants"]),
                heavy,
                float(spec.get("pixel_scale_arcsec", 0.05)),
                nr["occlusion"]["stride_pix"],
                nr["occlusion"]["patch_pix"],
            )
            r.fig(f"near_real_{plateifu}.png", fig, f"near-real {plateifu}")
    occ = nr["occlusion"]
    r.add(
        "Figure: the lensed MaNGA galaxy (one noise realisation) with the subhalo (cyan +) of the heaviest "
        f"mass on and off the arc, and occlusion maps: a {occ['patch_pix']}x{occ['patch_pix']}-pixel patch "
        f"(stride {occ['stride_pix']}) set to 0 in the normalised input (all channels); colour = P(subhalo) "
        "without the patch minus with it (positive: the patch supported 'subhalo'), averaged over "
        f"{occ.get('n_noise_occlusion', occ['n_noise'])} noise realisations and the seeds.\n"
    )


def _limitations(r: Report) -> None:
    lines = [
        "## Limitations\n",
        "- **Kinematics are analytic or MaNGA-based, not hydrodynamical**: rotating exponential disks with "
        "clumps, or one low-redshift MaNGA galaxy's Ha velocity field rescaled to a z = 2 source; no "
        "turbulence, outflows or merger kinematics.",
        "- **One macro-lens family and one subhalo**: SIE (or EPL) + external shear + a single truncated NFW "
        "subhalo; no subhalo population, no line-of-sight haloes, no lens-light subtraction residuals.",
        "- **Domain gap to real IFU lenses**: idealised Gaussian PSF, Gaussian/Poisson noise set relative "
        "to each image's peak, a perfect velocity-centroid map (first moment) with an analytic error "
        "model; no spectral resolution, sky lines, covariance between spaxels or continuum.",
        "- **Only one real galaxy**: the shared folder holds one MaNGA galaxy (7815-3702), so the "
        "'unseen MaNGA templates' test is a test on one galaxy under random rotations, flips, sizes "
        "and offsets — not a population of real sources.",
        "- **Scale**: small CNNs trained for minutes on 2 CPU cores (see *Scale*). Detection at low mass "
        "needs far more data and training; where AUC ≈ 0.5 the result says 'not learnable at this "
        "scale', not 'impossible'. The ideal-observer S/N table bounds what a better-trained model "
        "could reach.",
        "- **Statistics**: intervals cover test-set sampling for fixed trained networks; the seed "
        "spread (listed per seed) is not folded into them. With 2–3 seeds, seed variation is "
        "only roughly characterised.",
    ]
    ml = r.s.get("mask_leak")
    if ml and ml["mask_leak"].get("version") is None:
        e = ml["mask_leak"]
        worst = max(e, key=lambda k: e[k]["auc"]["value"])
        lines.append(
            "- **Mask leak in the simulated velocity channel**: the velocity map is 0 outside a mask "
            "computed on the noiseless flux, i.e. it carries a noiseless isophote of the lensed image. With "
            "the lens and "
            f"source fixed, the mask alone reaches AUC {fmt_ci(e[worst]['auc'])} (`{worst}`). Velocity gains "
            "measured with the noiseless mask must be checked against it. The simulator now computes the "
            "mask from the noisy flux by default (`noise.mask_from=observed`); only the *Control with the "
            "observed mask* study was re-run so far; the others keep the noiseless mask they ran with."
        )
    h = r.s.get("headline")
    if h and h.get("runs"):
        vals = [v["val_auc"] for v in h["runs"].values() if v.get("val_auc") is not None]
        if vals:
            text = (
                f"- **What these runs expose**: the networks barely learned the task — best validation AUC "
                f"{min(vals):.3f}–{max(vals):.3f} on the training population (M200 3e9–3e11) after "
                f"{h['scale']['epochs']} epochs of {h['scale']['n_train']} samples."
                " A baseline-vs-dual-stream "
                "comparison between two barely-trained detectors says little about the information content "
                "of the velocity channel; the ideal-observer analysis does, and it bounds the possible gain."
            )
            null = h.get("null_condition")
            if null in h.get("conditions", {}):
                auc0 = h["conditions"][null]["variants"]["baseline"]["auc"]["value"]
                text += (
                    f" The baseline AUC of {auc0:.3f} at `{null}`, where subhalos carry no usable signal, "
                    "is a "
                    "property of this test set and these networks, which is why detection is also judged "
                    "against that floor."
                )
            lines.append(text)
    r.add("\n".join(lines) + "\n")


def _hard_negatives(r: Report) -> None:
    s = r.s.get("hard_negatives")
    if not s or not s.get("false_positives"):
        return
    from lensml.analysis.false_positives import markdown_section

    r.section("Hard negatives: lens multipoles and source clumps", s, scale=True)
    r.add(markdown_section(s))


def _reproduce(r: Report, name: str) -> None:
    cmds = [s["command"] for s in r.s.values() if s.get("command")]
    r.add("## Reproduce\n")
    r.add(
        "```bash\n# every study at full scale, then this report (see experiments/run_all.sh)\n"
        + "\n".join(cmds)
        + f"\npython -m lensml.report name={name}\n"
        "# tiny versions (seconds): add scale=tiny, as in tests/e2e/test_studies.py\n```\n"
    )


@hydra.main(version_base="1.3", config_path="../conf", config_name="report")
@clean_errors
def main(cfg: DictConfig) -> None:
    path = build_report(Path(cfg.summary_dir), Path(cfg.out_dir), str(cfg.name))
    print(f"report written: {path}", flush=True)


if __name__ == "__main__":
    main()

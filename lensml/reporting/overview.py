"""The report's opening: title and how to read the numbers, the scale of the runs, the pipeline diagram."""

from __future__ import annotations

from lensml.analysis import plots
from lensml.reporting.core import Report, scale_line


def render_title(r: Report) -> None:
    """Title and the paragraph on where the numbers come from and what the intervals mean."""
    out_dir, summary_dir = r.out_dir.resolve(), r.summary_dir.resolve()
    rel = summary_dir.relative_to(out_dir) if summary_dir.is_relative_to(out_dir) else r.summary_dir
    r.add(f"# lensml report `{r.name}`: does the velocity channel help detect subhalos?\n")
    r.add(
        "Every number below is read from the run summaries in "
        f"[`{rel}`]({rel}) (written by `python -m lensml.study`); `python -m lensml.report name={r.name}` "
        "regenerates this file and its figures from them alone. Intervals are 95 % stratified-bootstrap "
        "percentile intervals over test samples (1000 resamples) of the **seed-averaged** statistic; "
        "paired differences use the same resampled indices for both models (identical test sets: one "
        "data seed). Per-seed values show the seed spread.\n"
    )


def render_scale(r: Report) -> None:
    """Per trained study its scale line, the machine, the studies without a summary, the training curves."""
    lines = [
        "## Scale of these runs\n",
        "All runs on CPU (2 cores shared), at the scale below; larger runs "
        "(GPU) would change the numbers, which is the point of committing the commands.\n",
    ]
    for name, s in r.s.items():
        if s.get("runs") and any(v.get("variant") for v in s["runs"].values()) and name in r.trained:
            lines.append(
                f"- **{name}**: {scale_line(s)}. Common overrides: `{' '.join(s.get('common', []))}`."
            )
    machine = next((s.get("machine") for s in r.s.values() if s.get("machine")), "")
    lines.append(f"- machine: {machine}")
    missing = [k for k in r.expected if k not in r.s and k != "sensitivity"]
    if missing:
        lines.append(f"- **not in this report** (no summary committed): {', '.join(missing)}")
    r.add("\n".join(lines))
    runs = {}
    for k in r.trained:
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


def render_pipeline(r: Report) -> None:
    """The data flow, as a Mermaid diagram."""
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

"""Aggregate a sweep: ``python -m lensml.aggregate <multirun dir> [metric=auc split=test ...]``.

Reads every ``metrics.json`` under the sweep dir, groups runs by their overrides except the seed keys
(``seed``, ``data.seed``), and writes one table (mean and standard deviation over seeds) as
``aggregate.csv`` and ``aggregate.md`` plus ``auc_vs_mass.png`` (the headline metric against subhalo mass,
one line per model; the mass is ``subhalo.mass_bin`` when it was swept, else the per-mass-bin metrics).
Options: ``conf/aggregate.yaml``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from lensml.atomic_io import save_figure, write_text
from lensml.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: x-axis label of the per-mass-bin plot by the runs' ``metrics.mass_key``
MASS_LABELS: dict[str, str] = {
    "mass_msun": "subhalo $M_{200}$",
    "m_trunc_msun": "subhalo mass inside $r_t$",
    "m_proj_1kpc_msun": "projected subhalo mass within 1 kpc",
    "m_proj_0p1arcsec_msun": 'projected subhalo mass within 0.1"',
}


def load_runs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """All ``metrics.json`` below ``sweep_dir`` (each dict gets ``_path``), sorted by path."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise DataError(
            f"sweep dir {root} does not exist; pass the multirun dir printed by `python -m lensml.train -m`"
        )
    runs = []
    for path in sorted(root.rglob("metrics.json")):
        try:
            m = json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("skipping unreadable %s", path)
            continue
        m["_path"] = str(path)
        runs.append(m)
    if not runs:
        raise DataError(
            f"no metrics.json under {root}; did the sweep finish? (each run writes <run dir>/metrics.json)"
        )
    return runs


def _overrides(run: dict[str, Any]) -> dict[str, str]:
    out = {}
    for o in run.get("overrides", []):
        if "=" in o:
            k, v = o.split("=", 1)
            out[k.lstrip("+~")] = v
    return out


def group_runs(
    runs: list[dict[str, Any]], seed_keys: list[str], group_by: list[str] | None = None
) -> tuple[list[str], dict[tuple[str, ...], list[dict[str, Any]]]]:
    """Group runs by ``group_by`` keys (default: overrides that vary across runs, minus seed keys)."""
    ovs = [_overrides(r) for r in runs]
    for r, o in zip(runs, ovs):
        o["model"] = str(r.get("model"))
    if group_by is None:
        keys = sorted({k for o in ovs for k in o} - set(seed_keys))
        keys = [k for k in keys if len({o.get(k) for o in ovs}) > 1 or k == "model"]
        keys = ["model"] + [k for k in keys if k != "model"]
    else:
        keys = list(group_by)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r, o in zip(runs, ovs):
        groups[tuple(o.get(k, "") for k in keys)].append(r)
    return keys, dict(groups)


def _stat(values: list[float | None]) -> tuple[float, float, int]:
    v = np.array([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan"), int(v.size)


def aggregate_table(
    runs: list[dict[str, Any]], metric: str = "auc", split: str = "test", seed_keys: list[str] | None = None,
    group_by: list[str] | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows of the table: group keys, n_runs, mean/std of ``metric`` and of recall at FPR 5 %."""
    keys, groups = group_runs(runs, seed_keys or ["seed", "data.seed"], group_by)
    rows = []
    for gkey, members in sorted(groups.items()):
        row: dict[str, Any] = dict(zip(keys, gkey))
        row["n_runs"] = len(members)
        for name in dict.fromkeys([metric, "recall_at_fpr5"]):
            mean, std, _ = _stat([(r.get(split) or {}).get(name) for r in members])
            row[f"{split}_{name}_mean"] = mean
            row[f"{split}_{name}_std"] = std
        row["_members"] = members
        rows.append(row)
    return keys, rows


def format_table(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(markdown, csv) renderings of the rows."""
    cols = [c for c in rows[0] if not c.startswith("_")]

    def cell(col: str, v: Any) -> str:
        if col.endswith("mass_bin"):
            try:
                return f"{float(v):.3g}"
            except ValueError:
                return str(v)
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(cell(c, r[c]) for c in cols) + " |" for r in rows]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in rows:
        w.writerow([r[c] for c in cols])
    return "\n".join(md) + "\n", buf.getvalue()


def mass_axis_label(mass_keys: set[str]) -> str:
    """x label of ``auc_vs_mass.png``: the binning mass when all plotted runs used the same one."""
    what = MASS_LABELS.get(next(iter(mass_keys)), "subhalo mass") if len(mass_keys) == 1 else "subhalo mass"
    return what + r" [$M_\odot$]"


def plot_vs_mass(rows: list[dict[str, Any]], keys: list[str], metric: str, split: str, path: Path) -> Path:
    """Headline metric against subhalo mass, one line per model (and per other non-mass setting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    lines: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    mass_key = "subhalo.mass_bin"
    binned_by: set[str] = set()  # metrics.mass_key of the runs whose per-mass-bin metrics are plotted
    for r in rows:
        label = ", ".join(f"{r[k]}" if k == "model" else f"{k}={r[k]}" for k in keys if k != mass_key)
        if mass_key in keys and r.get(mass_key):
            lines[label].append(
                (float(r[mass_key]), r[f"{split}_{metric}_mean"], r[f"{split}_{metric}_std"])
            )
        else:  # per-mass-bin metrics of each run, averaged over the group's runs
            by_bin: dict[float, list[float | None]] = defaultdict(list)
            for m in r["_members"]:
                binned_by.add(str((m.get(split) or {}).get("mass_key", "mass_msun")))
                for name, e in ((m.get(split) or {}).get("per_mass_bin") or {}).items():
                    if e.get("n_pos"):
                        by_bin[float(name)].append(e.get(metric))
            for mass, vals in by_bin.items():
                mean, std, n = _stat(vals)
                if n:
                    lines[label].append((mass, mean, std))
    for label, pts in sorted(lines.items()):
        pts.sort()
        x, y, e = (np.array(v) for v in zip(*pts))
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel(mass_axis_label(binned_by))
    ax.set_ylabel(f"{split} {metric}")
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(path, fig, dpi=120)
    plt.close(fig)
    return path


def aggregate(cfg: Any) -> dict[str, Any]:
    """Build, print-ready and write the table and plot for ``cfg`` (``conf/aggregate.yaml``)."""
    runs = load_runs(cfg.sweep_dir)
    group_by = list(cfg.group_by) if cfg.get("group_by") else None
    keys, rows = aggregate_table(runs, cfg.metric, cfg.split, list(cfg.seed_keys), group_by)
    md, csv_text = format_table(rows)
    out = Path(cfg.out_dir or cfg.sweep_dir)
    write_text(out / "aggregate.md", md)
    write_text(out / "aggregate.csv", csv_text)
    fig = plot_vs_mass(rows, keys, cfg.metric, cfg.split, out / "auc_vs_mass.png")
    return {"n_runs": len(runs), "markdown": md, "csv": out / "aggregate.csv", "figure": fig}


def main(argv: list[str] | None = None) -> None:
    """CLI: first argument the sweep dir, then ``key=value`` overrides of ``conf/aggregate.yaml``."""
    from hydra import compose, initialize_config_dir

    from lensml.paths import CONF_DIR

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return
    overrides = [a if "=" in a else f"sweep_dir={a}" for a in args]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("aggregate", overrides=overrides)
    if cfg.split not in ("val", "test"):
        raise ConfigError(f"split={cfg.split!r} must be val or test")
    result = aggregate(cfg)
    print(f"{result['n_runs']} runs aggregated (mean and std over seeds):\n")
    print(result["markdown"])
    print(f"table: {result['csv']}\nplot:  {result['figure']}")


if __name__ == "__main__":
    main()

"""Report figures (matplotlib, Agg). Each function takes summary dicts / arrays and returns a Figure."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {
    "baseline": "tab:blue",
    "dual_stream": "tab:orange",
    "dual_shuffled": "tab:green",
    "velocity_only": "tab:purple",
    "flux": "tab:blue",
    "flux_velocity": "tab:orange",
    "shuffled_velocity": "tab:green",
    "mask_only": "tab:brown",
    "flux_snr": "tab:cyan",
    "flux_mask": "tab:olive",
    "flux_velocity_snr": "tab:red",
    "flux_oracle": "tab:gray",
    "flux_velocity_oracle": "tab:pink",
}
DPI = 80


def color(variant: str) -> str:
    """The variant's colour: named ones fixed, others from a stable hash of the name (the same in every
    process, so a regenerated figure is the same file)."""
    return COLORS.get(variant, f"C{zlib.crc32(variant.encode()) % 10}")


def _plot_rocs(
    ax: plt.Axes, cond: Mapping[str, Any], label: Callable[[str, Mapping[str, Any]], str]
) -> None:
    """One thin ROC line per seed and variant (the first labelled ``label(variant, auc)``), and chance."""
    for v, e in cond["variants"].items():
        for k, roc in enumerate(e["roc"]):
            name = label(v, e["auc"]) if k == 0 else None
            ax.plot(roc["fpr"], roc["tpr"], color=color(v), lw=1, alpha=0.8, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)


def roc_figure(cond: Mapping[str, Any], title: str = "") -> plt.Figure:
    """ROC curves of every variant of one condition summary (one thin line per seed)."""
    fig, ax = plt.subplots(figsize=(4.2, 4), dpi=DPI)
    _plot_rocs(ax, cond, lambda v, a: f"{v}: AUC {a['value']:.3f} [{a['ci'][0]:.3f}, {a['ci'][1]:.3f}]")
    ax.axvline(0.05, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def rocs_grid(conds: Mapping[str, Mapping[str, Any]], titles: Mapping[str, str]) -> plt.Figure:
    """ROC panels side by side, one per condition."""
    n = len(conds)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.3), dpi=DPI, squeeze=False)
    for ax, (name, cond) in zip(axes[0], conds.items()):
        _plot_rocs(ax, cond, lambda v, a: f"{v} {a['value']:.2f} [{a['ci'][0]:.2f},{a['ci'][1]:.2f}]")
        ax.set_title(titles.get(name, name), fontsize=9)
        ax.set_xlabel("FPR")
        ax.legend(fontsize=6, loc="lower right")
    axes[0][0].set_ylabel("TPR")
    fig.tight_layout()
    return fig


def metric_vs_condition(
    conds: Mapping[str, Mapping[str, Any]],
    labels: Sequence[str],
    metric: str = "auc",
    ylabel: str = "ROC AUC",
    chance: float | None = 0.5,
) -> plt.Figure:
    """Seed-averaged metric with its 95 % interval, per condition (x) and variant (colour)."""
    names = list(conds)
    variants: list[str] = []
    for c in conds.values():
        variants += [v for v in c["variants"] if v not in variants]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 1.5), 3.3), dpi=DPI)
    w = 0.8 / max(1, len(variants))
    for j, v in enumerate(variants):
        xs, ys, lo, hi = [], [], [], []
        for i, n in enumerate(names):
            e = conds[n]["variants"].get(v)
            if e is None:
                continue
            m = e[metric]
            xs.append(i + (j - (len(variants) - 1) / 2) * w)
            ys.append(m["value"])
            lo.append(m["value"] - m["ci"][0])
            hi.append(m["ci"][1] - m["value"])
            ax.scatter([xs[-1]] * len(m["seed_values"]), m["seed_values"], s=6, color=color(v), alpha=0.5)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=color(v), label=v, capsize=3, ms=4)
    if chance is not None:
        ax.axhline(chance, color="k", ls=":", lw=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def sensitivity_figure(sens: Mapping[str, Any], distance_conditions: Sequence[str]) -> plt.Figure:
    """Detection rate at fixed FPR vs log10 mass (left) and vs distance from the arc (right panels)."""
    n = 1 + len(distance_conditions)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.2), dpi=DPI, squeeze=False)
    ax = axes[0][0]
    fpr = sens["fpr"]
    for v, e in sens["variants"].items():
        c = e["vs_mass"]
        edges = np.asarray(c["edges"])
        mid = 0.5 * (edges[:-1] + edges[1:])
        ok = np.array([r is not None for r in c["rate"]])
        r = np.array([x if x is not None else np.nan for x in c["rate"]])
        lo = np.array([x if x is not None else np.nan for x in c["lo"]])
        hi = np.array([x if x is not None else np.nan for x in c["hi"]])
        ax.plot(mid[ok], r[ok], "-o", ms=3, color=color(v), label=v)
        ax.fill_between(mid[ok], lo[ok], hi[ok], color=color(v), alpha=0.2)
    ax.axhline(fpr, color="k", ls=":", lw=0.8)
    ax.set_xlabel("log10 subhalo M200 [M_sun]")
    ax.set_ylabel(f"detection rate at FPR {fpr:.0%}")
    ax.legend(fontsize=7)
    for ax, cname in zip(axes[0][1:], distance_conditions):
        for v, e in sens["variants"].items():
            c = e["vs_distance"].get(cname)
            if not c:
                continue
            edges = np.asarray(c["edges"])
            mid = 0.5 * (edges[:-1] + np.minimum(edges[1:], edges[:-1] + 0.5))
            ok = np.array([r is not None for r in c["rate"]])
            r = np.array([x if x is not None else np.nan for x in c["rate"]])
            lo = np.array([x if x is not None else np.nan for x in c["lo"]])
            hi = np.array([x if x is not None else np.nan for x in c["hi"]])
            ax.errorbar(
                mid[ok],
                r[ok],
                yerr=[r[ok] - lo[ok], hi[ok] - r[ok]],
                fmt="-o",
                ms=3,
                capsize=2,
                color=color(v),
                label=v,
            )
        ax.axhline(fpr, color="k", ls=":", lw=0.8)
        ax.set_xlabel("distance from arc mask [arcsec]")
        ax.set_title(cname, fontsize=9)
    fig.tight_layout()
    return fig


def _show(ax: plt.Axes, img: np.ndarray, extent: float, cmap: str, title: str, sym: bool = False) -> None:
    vmax = float(np.nanmax(np.abs(img))) if sym else None
    ax.imshow(
        img,
        origin="lower",
        cmap=cmap,
        extent=[-extent, extent, -extent, extent],
        vmin=-vmax if sym and vmax else None,
        vmax=vmax if sym and vmax else None,
    )
    ax.set_title(title, fontsize=7)
    ax.tick_params(labelsize=6)


def examples_figure(ex: Mapping[str, np.ndarray], pixel_scale_arcsec: float) -> plt.Figure:
    """Simulated test examples: flux (top) and velocity (bottom); subhalo marked with its mass."""
    n = len(ex["label"])
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n, 3.7), dpi=60, squeeze=False)
    half = ex["flux"].shape[-1] * pixel_scale_arcsec / 2
    for i in range(n):
        m = float(ex["mass_msun"][i])
        title = f"M={m:.1e}" if ex["label"][i] else "no subhalo"
        _show(axes[0][i], ex["flux"][i], half, "magma", f"flux, {title}")
        v = np.where(ex["mask"][i], ex["velocity"][i], np.nan)
        _show(axes[1][i], v, half, "RdBu_r", "velocity [km/s]", sym=True)
        if ex["label"][i]:
            for ax in (axes[0][i], axes[1][i]):
                ax.plot(ex["sub_x_arcsec"][i], ex["sub_y_arcsec"][i], "c+", ms=10, mew=1.5)
    fig.tight_layout()
    return fig


def near_real_figure(
    arr: Mapping[str, np.ndarray],
    subs: Mapping[str, Any],
    variants: Sequence[str],
    cases: Sequence[str],
    pixel_scale_arcsec: float,
    stride: int,
    patch: int,
) -> plt.Figure:
    """Rows: ``cases`` (e.g. ``on_arc_1e+11``); columns: flux, velocity, occlusion map of each variant."""
    cases = [c for c in cases if f"{c}__flux" in arr]
    ncol = 2 + len(variants)
    fig, axes = plt.subplots(len(cases), ncol, figsize=(2.0 * ncol, 2.1 * len(cases)), dpi=DPI, squeeze=False)
    n = arr[f"{cases[0]}__flux"].shape[-1]
    half = n * pixel_scale_arcsec / 2
    for r, case in enumerate(cases):
        s = subs["on_arc" if case.startswith("on_arc") else "off_arc"]
        _show(axes[r][0], arr[f"{case}__flux"], half, "magma", f"{case}: flux")
        v = np.where(arr[f"{case}__velocity"] != 0, arr[f"{case}__velocity"], np.nan)
        _show(axes[r][1], v, half, "RdBu_r", "velocity [km/s]", sym=True)
        for j, var in enumerate(variants):
            occ = arr.get(f"occ__{var}__{case}__all")
            ax = axes[r][2 + j]
            if occ is None:
                ax.axis("off")
                continue
            k = occ.shape[0]
            step = stride * pixel_scale_arcsec
            lo = -half + patch * pixel_scale_arcsec / 2
            hi = lo + (k - 1) * step
            vmax = float(np.abs(occ).max()) or 1.0
            ax.imshow(
                occ,
                origin="lower",
                cmap="PuOr_r",
                vmin=-vmax,
                vmax=vmax,
                extent=[lo - step / 2, hi + step / 2, lo - step / 2, hi + step / 2],
            )
            ax.set_xlim(-half, half)
            ax.set_ylim(-half, half)
            ax.set_title(f"occlusion {var}\nmax |dP| = {vmax:.2g}", fontsize=7)
            ax.tick_params(labelsize=6)
        for ax in axes[r]:
            ax.plot(s["x"], s["y"], "c+", ms=10, mew=1.5)
    fig.tight_layout()
    return fig


def signal_figure(sig: Mapping[str, Any]) -> plt.Figure:
    """Subhalo perturbation amplitude in units of the noise, flux vs velocity channel, per mass bin."""
    fig, ax = plt.subplots(figsize=(4.2, 3.2), dpi=DPI)
    bins = sig["bins"]
    x = [np.log10(float(b["mass_bin"])) for b in bins]
    for key, lab, col in (("flux_snr", "flux", "tab:blue"), ("velocity_snr", "velocity", "tab:red")):
        med = [b[key]["median"] for b in bins]
        p90 = [b[key]["p90"] for b in bins]
        ax.plot(x, med, "-o", color=col, label=f"{lab} (median)")
        ax.plot(x, p90, "--", color=col, alpha=0.7, label=f"{lab} (90th pct)")
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", ls=":", lw=0.8)
    ax.set_xlabel("log10 subhalo M200 [M_sun]")
    ax.set_ylabel("max |perturbation| / noise sigma")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def signal_floors_figure(bins: Sequence[Mapping[str, Any]]) -> plt.Figure:
    """Median matched-filter S/N vs mass: flux, and velocity for each velocity-error floor (signal v2)."""
    fig, ax = plt.subplots(figsize=(4.4, 3.2), dpi=DPI)
    x = [np.log10(float(b["mass_bin"])) for b in bins]
    ax.plot(x, [b["flux_snr"]["median"] for b in bins], "-o", color="tab:blue", label="flux")
    floors = list(bins[0]["velocity"])
    reds = plt.cm.Reds(np.linspace(0.9, 0.45, len(floors)))
    for f, col in zip(floors, reds, strict=True):
        med = [b["velocity"][f]["velocity_snr"]["median"] for b in bins]
        ax.plot(x, med, "-s", color=col, ms=3, label=f"velocity, floor {f} km/s")
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", ls=":", lw=0.8)
    ax.set_xlabel("log10 subhalo M200 [M_sun]")
    ax.set_ylabel("matched-filter S/N (median)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _per_run_curves(ax: plt.Axes, runs: Mapping[str, Mapping[str, Any]], xy: Any) -> None:
    """One line per run (colour = variant, one legend entry per variant); ``xy(run)`` gives (x, y) or None
    (run skipped); a dotted line at AUC 0.5."""
    seen = set()
    for r in runs.values():
        pts = xy(r)
        if pts is None:
            continue
        v = str(r.get("variant"))
        ax.plot(*pts, "-o", ms=2, color=color(v), alpha=0.8, label=v if v not in seen else None)
        seen.add(v)
    ax.axhline(0.5, color="k", ls=":", lw=0.8)


def training_curves(runs: Mapping[str, Mapping[str, Any]]) -> plt.Figure:
    """Validation AUC after each epoch for every run (colour = variant)."""
    fig, ax = plt.subplots(figsize=(4.4, 3.0), dpi=DPI)

    def xy(r: Mapping[str, Any]) -> tuple[range, list[float]]:
        curve = r.get("val_auc_per_epoch") or []
        return range(1, len(curve) + 1), curve

    _per_run_curves(ax, runs, xy)
    ax.set_xlabel("validation pass (after each epoch; last = final check)")
    ax.set_ylabel("val ROC AUC (training population)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def learning_curves(runs: Mapping[str, Mapping[str, Any]]) -> plt.Figure:
    """Validation AUC vs training samples seen (log axis), one line per run (colour = variant), for runs that
    log ``samples_seen_per_epoch``."""
    fig, ax = plt.subplots(figsize=(4.6, 3.1), dpi=DPI)

    def xy(r: Mapping[str, Any]) -> tuple[list[float], list[float]] | None:
        x, y = r.get("samples_seen_per_epoch") or [], r.get("val_auc_per_epoch") or []
        return (x, y) if x and len(x) == len(y) else None

    _per_run_curves(ax, runs, xy)
    ax.set_xscale("log")
    ax.set_xlabel("training samples seen")
    ax.set_ylabel("val ROC AUC (target priors)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

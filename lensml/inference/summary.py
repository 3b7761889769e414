"""Summaries of per-draw forecast significances: medians with bootstrap intervals, detected fractions,
M_min (the mass at which the median draw reaches the threshold), velocity gains; the Markdown table and
the figure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def m_min(log_m: np.ndarray, median_sig: np.ndarray, threshold: float) -> float | None:
    """Mass (M_sun) where the median significance crosses ``threshold`` (log-log interpolation between
    bins); None if it does not cross inside the bins."""
    y = np.log10(np.maximum(median_sig, 1e-300)) - math.log10(threshold)
    for k in range(len(y) - 1):
        if y[k] < 0 <= y[k + 1]:
            t = -y[k] / (y[k + 1] - y[k])
            return float(10 ** (log_m[k] + t * (log_m[k + 1] - log_m[k])))
    if len(y) and y[0] >= 0:
        return None
    return None


def m_min_ratio(flux: float | None, other: float | None, boot_flux: list[float | None],
                boot_other: list[float | None]) -> dict[str, Any]:
    """M_min(flux) / M_min(other) and its paired 95 % bootstrap interval (the two M_min of each resample
    from the same draws); ``ci95`` None when fewer than 90 % of the resamples have both M_min inside the
    mass bins; ``significant``: the interval excludes 1."""
    pairs = [a / b for a, b in zip(boot_flux, boot_other) if a is not None and b is not None]
    value = None if flux is None or other is None else flux / other
    ok = value is not None and len(pairs) > 0.9 * len(boot_flux)  # no interval without a point estimate
    ci = np.quantile(pairs, [0.025, 0.975]).tolist() if ok else None
    return {
        "value": value,
        "ci95": ci,
        "significant": ci is not None and (ci[0] > 1.0 or ci[1] < 1.0),
    }


def _bound(log_m: np.ndarray, median_sig: np.ndarray, threshold: float) -> str:
    if np.all(median_sig >= threshold):
        return f"< {10 ** log_m[0]:.1e}"
    if np.all(median_sig < threshold):
        return f"> {10 ** log_m[-1]:.1e}"
    return "non-monotonic"


def summarise(
    sig: Mapping[str, Mapping[str, np.ndarray]],
    masses: np.ndarray,
    threshold: float,
    n_boot: int,
    seed: int = 0,
) -> dict[str, Any]:
    """``sig[dataset][marginalisation]``: (n_draws, n_bins). ``masses``: (n_draws, n_bins) M_sun.

    Bootstrap over draws (paired across bins, data sets and marginalisations; 95 % intervals).
    ``results[dataset][marginalisation]["m_min_ratio"]`` (data sets other than flux): M_min(flux) /
    M_min(dataset) (> 1: the data set detects lighter subhalos) with its paired interval: both M_min from
    the same resampled draws, so the draw-to-draw scatter the two share cancels (the unpaired M_min
    intervals overlap more than the ratio's).
    """
    rng = np.random.default_rng(seed)
    n = masses.shape[0]
    boot = rng.integers(0, n, size=(n_boot, n))
    log_m = np.log10(np.median(masses, axis=0))
    out: dict[str, Any] = {"log10_mass_median": log_m.tolist(), "threshold_sigma": threshold, "results": {}}
    boot_m_min: dict[tuple[str, str], list[float | None]] = {}
    for ds, per in sig.items():
        out["results"][ds] = {}
        for marg, s in per.items():
            if np.all(np.isnan(s)):  # not defined for this data set (the cube with a pixelated source)
                continue
            med = np.median(s, axis=0)
            bmed = np.median(s[boot], axis=1)  # (n_boot, n_bins)
            frac = np.mean(s >= threshold, axis=0)
            bfrac = np.mean(s[boot] >= threshold, axis=1)
            mm = m_min(log_m, med, threshold)
            bm = [m_min(log_m, b, threshold) for b in bmed]
            boot_m_min[ds, marg] = bm
            bm_ok = np.array([v for v in bm if v is not None])
            out["results"][ds][marg] = {
                "median": med.tolist(),
                "median_ci95": np.quantile(bmed, [0.025, 0.975], axis=0).T.tolist(),
                "p10": np.quantile(s, 0.1, axis=0).tolist(),
                "p90": np.quantile(s, 0.9, axis=0).tolist(),
                "frac_detected": frac.tolist(),
                "frac_detected_ci95": np.quantile(bfrac, [0.025, 0.975], axis=0).T.tolist(),
                "m_min_msun": mm,
                "m_min_ci95": (
                    np.quantile(bm_ok, [0.025, 0.975]).tolist() if len(bm_ok) > 0.9 * n_boot else None
                ),
                "m_min_note": None if mm is not None else _bound(log_m, med, threshold),
            }
    for ds, per in out["results"].items():
        for marg, r in per.items():
            if ds != "flux" and marg in out["results"].get("flux", {}):
                r["m_min_ratio"] = m_min_ratio(out["results"]["flux"][marg]["m_min_msun"], r["m_min_msun"],
                                               boot_m_min["flux", marg], boot_m_min[ds, marg])
    flux = sig.get("flux", {})
    out["gain"] = {}
    for ds, per in sig.items():
        if ds == "flux":
            continue
        out["gain"][ds] = {
            marg: np.median(s / np.maximum(flux[marg], 1e-300), axis=0).tolist()
            for marg, s in per.items()
            if not np.all(np.isnan(s))
        }
    return out


def _m(x: float | None, note: str | None) -> str:
    return f"{x:.2e}" if x is not None else str(note)


def markdown(result: Mapping[str, Any]) -> str:
    """The forecast's Markdown report: significance table, M_min, velocity gains, checks, timing."""
    s = result["summary"]
    bins = [f"{10**m:.1e}" for m in s["log10_mass_median"]]
    thr = s["threshold_sigma"]
    lines = [
        "# Forecast: linearised subhalo detection significance",
        "",
        f"{result['n_draws']} draws per mass bin (median M200 per bin: {', '.join(bins)} M_sun); "
        "significance",
        "= sqrt(Delta chi^2) after marginalising the nuisance set; median over draws "
        "[95 % bootstrap interval];",
        f"M_min: mass where the median draw reaches {thr:g} sigma (log-log interpolation).",
        "",
        "| data set | marginalise | " + " | ".join(f"M={b}" for b in bins) + f" | M_min ({thr:g} sigma) |",
        "|---|---|" + "---|" * len(bins) + "---|",
    ]
    for ds, per in s["results"].items():
        for marg, r in per.items():
            cells = [f"{m:.2f} [{lo:.2f}, {hi:.2f}]" for m, (lo, hi) in zip(r["median"], r["median_ci95"])]
            lines.append(
                f"| {ds} | {marg} | " + " | ".join(cells) + f" | {_m(r['m_min_msun'], r['m_min_note'])} |"
            )
    lines += ["", "Velocity gain (median of S(flux+velocity) / S(flux) per draw):", ""]
    lines += ["| data set | marginalise | " + " | ".join(bins) + " |", "|---|---|" + "---|" * len(bins)]
    for ds, per in s["gain"].items():
        for marg, g in per.items():
            lines.append(f"| {ds} | {marg} | " + " | ".join(f"x{v:.3f}" for v in g) + " |")
    if result.get("refit"):
        r = result["refit"]
        lines += [
            "",
            f"Linearisation check (nonlinear least-squares refits, {r['n_draws']} draws per bin): ratio "
            "nonlinear / linearised significance, median [p10, p90]:",
            "",
            "| data set | marginalise | " + " | ".join(bins) + " |",
            "|---|---|" + "---|" * len(bins),
        ]
        for key, per_bin in r["ratio"].items():
            ds, marg = key.split("|")
            lines.append(
                f"| {ds} | {marg} | "
                + " | ".join(f"{q[1]:.3f} [{q[0]:.3f}, {q[2]:.3f}]" for q in per_bin)
                + " |"
            )
    if result.get("unknown_position"):
        u = result["unknown_position"]
        lines += [
            "",
            f"Unknown position ({u['n_draws']} draws, {u['n_positions']} grid positions, marginalise "
            f"{u['marginalise']}; median local / global sigma, median N_eff):",
            "",
            "| data set | " + " | ".join(bins) + " |",
            "|---|" + "---|" * len(bins),
        ]
        for ds, per_bin in u["results"].items():
            lines.append(
                f"| {ds} | "
                + " | ".join(
                    f"{q['local']:.2f} / {q['global']:.2f} (N_eff {q['n_eff']:.0f})" for q in per_bin
                )
                + " |"
            )
    t = result["timing"]
    lines += [
        "",
        f"Time: {t['total_s']:.0f} s in all ({t['per_draw_s']:.2f} s per draw for every bin, data set and "
        f"marginalisation; refits {t.get('refit_s', 0):.0f} s; "
        f"unknown position {t.get('unknown_s', 0):.0f} s) "
        f"with {t['torch_threads']} torch threads on {t['cpu_count']} CPUs; load average at start "
        f"{t['load_average_start']:.2f} (above the thread count = a machine shared with other jobs).",
    ]
    return "\n".join(lines) + "\n"


def figure(result: Mapping[str, Any]):  # noqa: ANN201 - matplotlib Figure
    """Median significance vs mass per data set (one panel per marginalisation), bootstrap bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["summary"]
    mass = 10 ** np.asarray(s["log10_mass_median"])
    margs = list(next(iter(s["results"].values())))
    fig, axes = plt.subplots(1, len(margs), figsize=(4.2 * len(margs), 3.6), squeeze=False, sharey=True)
    for ax, marg in zip(axes[0], margs):
        for ds, per in s["results"].items():
            if marg not in per:
                continue
            r = per[marg]
            ci = np.asarray(r["median_ci95"])
            (line,) = ax.plot(mass, r["median"], "o-", label=ds, ms=3)
            ax.fill_between(mass, ci[:, 0], ci[:, 1], color=line.get_color(), alpha=0.25)
        ax.axhline(s["threshold_sigma"], color="k", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"marginalise: {marg}", fontsize=9)
        ax.set_xlabel("subhalo M200 (M$_\\odot$)")
    axes[0, 0].set_ylabel("linearised significance (sigma)")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig

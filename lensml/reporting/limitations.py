"""The report's limitations: fixed caveats of the simulation and the statistics, plus the ones the summaries
expose (the v1 mask leak, barely-trained networks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lensml.analysis.markdown import fmt_ci
from lensml.reporting.core import Report

_FIXED = [
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


def worst_mask_leak(leak: Mapping[str, Any]) -> str:
    """The condition where the v1 mask statistic separates the classes best (highest AUC)."""
    return max(leak, key=lambda k: leak[k]["auc"]["value"])


def val_auc_range(h: Mapping[str, Any]) -> tuple[float, float] | None:
    """(min, max) over the headline runs of their best validation AUC, or None without any."""
    vals = [v["val_auc"] for v in h["runs"].values() if v.get("val_auc") is not None]
    return (min(vals), max(vals)) if vals else None


def render(r: Report) -> None:
    lines = ["## Limitations\n", *_FIXED]
    ml = r.s.get("mask_leak")
    if ml and ml["mask_leak"].get("version") is None:
        e = ml["mask_leak"]
        worst = worst_mask_leak(e)
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
    if h and h.get("runs") and (vals := val_auc_range(h)):
        text = (
            f"- **What these runs expose**: the networks barely learned the task — best validation AUC "
            f"{vals[0]:.3f}–{vals[1]:.3f} on the training population (M200 3e9–3e11) after "
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

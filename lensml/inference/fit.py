"""Fit, then detect: maximum-likelihood fits of the smooth model and of smooth + subhalo to one sample.

Smooth fit (``fit_smooth``): from the ``n_starts`` best nodes of the data-driven coarse grid
(``fit_start.grid_starts``), a short trust-region least-squares run each (``scipy.optimize.least_squares``,
``trf``, Jacobian by ``torch.func.jacfwd``, physical bounds ``fit_model.BOUNDS``); the best is continued to
``final_nfev`` evaluations. Smooth + subhalo (``fit_subhalo``): the subhalo is scanned over a polar grid of
positions around the fitted Einstein ring (``n_angles`` angles x ``radii_offsets_arcsec`` about theta_E) and
trial masses, with the smooth model held at its best fit (one rendering per node); the ``n_refine`` best
nodes are refined in (log10 M, x, y) alone, and the ``n_joint`` best of those are refitted with every
parameter free. Re-check: when the score exceeds ``recheck_delta_chi2``, the smooth model is refitted from
the smooth part of the smooth + subhalo optimum (``recheck_nfev``), and the better smooth optimum is kept (so
a large score never comes from a smooth fit stopped short of its optimum; data-only rule, same for every
sample). Score: ``delta_chi2 = chi2_smooth - chi2_smooth+sub`` (clipped at 0).

Cost: ``timing`` in the result (seconds per stage); ``lensml.fit_detect`` logs images per minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import least_squares

from lensml.errors import ConfigError
from lensml.inference import physics
from lensml.inference.fit_model import Observed, Problem, SubhaloTable, inside, smooth_free
from lensml.inference.fit_start import GRID, grid_starts, oracle_start
from lensml.inference.renderer import DTYPE, Scene, render

START_MODES: tuple[str, ...] = ("grid", "oracle")


@dataclass
class FitSettings:
    """``fit.*`` settings (conf/fit_detect.yaml)."""

    start: str = "grid"  # grid (data-driven) | oracle (the true parameters: a truth-leaking bound)
    source_groups: list[str] = field(default_factory=lambda: ["source"])  # + "bulge"
    grid: dict[str, list[float]] | None = (
        None  # replaces entries of ``fit_start.GRID`` (the coarse start grid)
    )
    n_starts: int = 4
    start_nfev: int = 15
    final_nfev: int = 60
    n_angles: int = 32
    radii_offsets_arcsec: list[float] = field(default_factory=lambda: [-0.15, 0.0, 0.15])
    scan_log10_mass: list[float] = field(default_factory=lambda: [9.5, 10.5])
    n_refine: int = 3
    refine_nfev: int = 10
    n_joint: int = 1
    joint_nfev: int = 30
    recheck_delta_chi2: float = 25.0  # above it, the smooth model is refitted from the smooth+sub optimum
    recheck_nfev: int = 40

    def __post_init__(self) -> None:
        if self.start not in START_MODES:
            raise ConfigError(f"fit.start={self.start!r} is unknown; use one of {list(START_MODES)}.")
        bad = sorted(set(self.grid or {}) - set(GRID))
        if bad:
            raise ConfigError(f"fit.grid.{bad[0]} is not a start-grid entry; use {sorted(GRID)}.")
        if self.n_starts < 1 or self.n_angles < 1 or self.n_refine < 1:
            raise ConfigError("fit.n_starts, fit.n_angles and fit.n_refine must be >= 1.")


def _lsq(problem: Problem, t0: np.ndarray, max_nfev: int) -> tuple[np.ndarray, float, int]:
    """Bounded trust-region least squares from ``t0``: (best t, its chi-square, evaluations)."""
    from lensml.inference.fit_model import bounds

    lo, hi = bounds(problem.names)
    t0 = inside(np.asarray(t0, dtype=float), problem.names)
    res = least_squares(
        problem.resid, t0, jac=problem.jac, bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=max_nfev
    )
    chi2 = float(res.fun @ res.fun)
    chi2_0 = problem.chi2(t0)
    return (res.x, chi2, int(res.nfev)) if chi2 <= chi2_0 else (t0, chi2_0, int(res.nfev))


def fit_smooth(
    scene: Scene,
    obs: Observed,
    pixel_scale_arcsec: float,
    st: FitSettings,
    truth: np.ndarray | None = None,
) -> dict[str, Any]:
    """Multi-start maximum-likelihood fit of the smooth model; ``theta`` (full vector), ``chi2``, ``free``."""
    free = smooth_free(scene, obs.use_velocity, ["macro", *st.source_groups])
    if st.start == "oracle":
        if truth is None:
            raise ConfigError("fit.start=oracle needs the true parameters (simulated samples only).")
        starts, info = oracle_start(truth), {"start": "oracle"}
    else:
        grid = {**GRID, **{k: tuple(v) for k, v in (st.grid or {}).items()}}
        starts, info = grid_starts(scene, obs, pixel_scale_arcsec, st.n_starts, grid)
    runs = []
    nfev = 0
    for th0 in starts:
        prob = Problem(scene, obs, th0, free)
        t, chi2, k = _lsq(prob, th0[prob.idx], st.start_nfev)
        runs.append((chi2, prob, t))
        nfev += k
    runs.sort(key=lambda r: r[0])
    chi2, prob, t = runs[0]
    t, chi2, k = _lsq(prob, t, st.final_nfev)
    nfev += k
    return {
        "theta": prob.theta(t),
        "chi2": chi2,
        "free": free,
        "start_chi2": [float(r[0]) for r in runs],
        "nfev": nfev,
        **info,
    }


def _scan(
    scene: Scene, obs: Observed, theta: np.ndarray, sim: physics.LensSimulator, st: FitSettings
) -> list:
    """(chi2, x, y, log10 M) of the subhalo position / mass grid, best first (smooth model fixed)."""
    names = scene.names
    te = float(theta[names.index("macro.theta_E")])
    cx, cy = (float(theta[names.index(f"macro.center_{a}")]) for a in "xy")
    table = SubhaloTable(sim, cx + te, cy, te, (cx, cy))
    prob = Problem(scene, obs, theta, [], table)
    out = []
    for dr in st.radii_offsets_arcsec:
        for phi in np.arange(st.n_angles) * 2 * np.pi / st.n_angles:
            x, y = cx + (te + dr) * np.cos(phi), cy + (te + dr) * np.sin(phi)
            for lm in st.scan_log10_mass:
                out.append((prob.chi2(np.array([lm, x, y])), x, y, lm))
    out.sort(key=lambda r: r[0])
    return out


def fit_subhalo(
    scene: Scene,
    obs: Observed,
    smooth: dict[str, Any],
    sim: physics.LensSimulator,
    st: FitSettings,
) -> dict[str, Any]:
    """Smooth + subhalo fit from the smooth optimum (module docstring); ``chi2``, ``log10_mass``, x, y."""
    theta, free = smooth["theta"], smooth["free"]
    names = scene.names
    te = float(theta[names.index("macro.theta_E")])
    cen = tuple(float(theta[names.index(f"macro.center_{a}")]) for a in "xy")
    scan = _scan(scene, obs, theta, sim, st)
    refined = []
    nfev = 0
    for _, x, y, lm in scan[: st.n_refine]:
        table = SubhaloTable(sim, x, y, te, cen)
        prob = Problem(scene, obs, theta, [], table)
        t, chi2, k = _lsq(prob, np.array([lm, x, y]), st.refine_nfev)
        refined.append((chi2, t, table))
        nfev += k
    refined.sort(key=lambda r: r[0])
    best = (refined[0][0], refined[0][1], Problem(scene, obs, theta, [], refined[0][2]))
    for _, t_sub, table in refined[: st.n_joint]:
        prob = Problem(scene, obs, theta, free, table)
        t0 = np.concatenate([theta[prob.idx], t_sub])
        t, chi2, k = _lsq(prob, t0, st.joint_nfev)
        nfev += k
        if chi2 < best[0]:
            best = (chi2, t, prob)
    chi2, t, prob = best
    th = prob.theta(t)
    return {
        "theta": th,
        "chi2": float(chi2),
        "log10_mass": float(t[-3]),
        "x_arcsec": float(t[-2]),
        "y_arcsec": float(t[-1]),
        "scan_chi2_best": float(scan[0][0]),
        "nfev": nfev,
        "theta_E_arcsec": float(th[names.index("macro.theta_E")]),
    }


def detect(
    sim: physics.LensSimulator,
    scene: Scene,
    obs: Observed,
    st: FitSettings,
    truth: np.ndarray | None = None,
) -> dict[str, Any]:
    """Both fits of one observed sample and the score ``delta_chi2`` (JSON-able)."""
    t0 = time.perf_counter()
    pixel = float(sim.instrument.pixel_scale_arcsec)
    smooth = fit_smooth(scene, obs, pixel, st, truth)
    t1 = time.perf_counter()
    sub = fit_subhalo(scene, obs, smooth, sim, st)
    recheck = smooth["chi2"] - sub["chi2"] > st.recheck_delta_chi2 and st.recheck_nfev > 0
    if recheck:  # the null model also gets the start the alternative found (a large score never comes
        # from a smooth fit that stopped short of its optimum)
        prob = Problem(scene, obs, sub["theta"], smooth["free"])
        t, chi2, k = _lsq(prob, sub["theta"][prob.idx], st.recheck_nfev)
        smooth["nfev"] += k
        smooth["chi2_before_recheck"] = smooth["chi2"]
        if chi2 < smooth["chi2"]:
            smooth["chi2"], smooth["theta"] = chi2, prob.theta(t)
    smooth["rechecked"] = bool(recheck)
    sub.pop("theta")
    t2 = time.perf_counter()
    n_par = len(smooth["free"])
    return {
        "delta_chi2": max(smooth["chi2"] - sub["chi2"], 0.0),
        "chi2_smooth": smooth["chi2"],
        "chi2_sub": sub["chi2"],
        "n_data": obs.n_data,
        "n_params_smooth": n_par,
        "smooth": {k: v for k, v in smooth.items() if k not in ("theta", "free")},
        "smooth_theta": {n: float(v) for n, v in zip(scene.names, smooth["theta"]) if n in smooth["free"]},
        "sub": sub,
        "timing_s": {"smooth": t1 - t0, "sub": t2 - t1, "total": t2 - t0},
    }


def smooth_model_maps(scene: Scene, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noiseless (flux, velocity) of a fitted smooth parameter vector (for residual maps)."""
    with torch.no_grad():
        f, v = render(scene, torch.as_tensor(theta, dtype=DTYPE), False)
    return f.numpy(), v.numpy()


def settings_from(cfg: dict[str, Any]) -> FitSettings:
    """``FitSettings`` from the ``fit`` config node (plain dict); unknown keys are a ``ConfigError``."""
    known = set(FitSettings.__dataclass_fields__)
    extra = sorted(set(cfg) - known - {"datasets"})
    if extra:
        raise ConfigError(f"fit.{extra[0]} is not a fit setting; use one of {sorted(known | {'datasets'})}.")
    return FitSettings(**{k: v for k, v in cfg.items() if k in known})

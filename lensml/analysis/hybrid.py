"""Fit, then a CNN on the residuals: the hybrid detector of issue 15.

The CNN is a run trained on the *oracle* residuals (``data.oracle_residual=true``: ``(data - true smooth
model) / sigma``, ``lensml.data.oracle``), which detects a subhalo almost perfectly when the smooth model is
known. The hybrid feeds it the residuals about the *fitted* smooth model instead (``lensml.inference.fit``:
the fit of each test sample, cached by ``lensml.fit_detect``), in units of the same noise-model sigmas the
network was trained with, evaluated on the fitted model (with the draws' peak S/N and line width, which the
simulator's reported sigmas use too), so a gap to the oracle is the fit's, not a change of units. It needs
fits on the test samples only (made with ``fit.start=grid``: an oracle start is refused). Its AUC against
the fit's own score (Delta chi^2) and against the same CNN on the oracle residuals says how much of the
oracle bound survives a fitted, imperfect smooth model.

Residual maps (``lensml.data.oracle.add_residuals``, with the fitted model ``f0``, ``v0``):
``flux_resid_z = (flux - f0) / sigma_f(f0)`` in every pixel; ``velocity_resid_z = (velocity - v0) /
sigma_v(f0)`` inside the observed mask and the fitted model's noiseless mask (``f0`` above
``noise.mask_frac_of_peak`` of its peak), 0 elsewhere (and 0 for a flux-only fit, which has no velocity
model); ``resid_mask`` marks those pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lensml.data.oracle import add_residuals
from lensml.errors import ConfigError


def fitted_smooth_maps(sim: Any, draws: Any, k: int, fit: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Noiseless (flux, velocity km/s) of sample ``k``'s fitted smooth model: the fitter's scene with the
    neutral parameter vector (no truth) and the fit's free parameters (``fit["smooth_theta"]``) set."""
    from lensml.inference.fit import smooth_model_maps
    from lensml.inference.fit_model import fit_scene, neutral_theta

    scene, _ = fit_scene(sim, draws, k)
    theta = neutral_theta(scene)
    for name, value in fit["smooth_theta"].items():
        theta[scene.names.index(name)] = float(value)
    return smooth_model_maps(scene, theta)


def fitted_residuals(sim: Any, seed: int, fits: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Test samples ``fit["index"]`` of ``(seed, "test")`` (``sample_batch`` dict) with
    ``lensml.data.oracle.RESIDUAL_KEYS`` about their fitted smooth models (module docstring)."""
    if any((f.get("smooth") or {}).get("start") == "oracle" for f in fits):
        raise ConfigError("the hybrid detector needs fits made from the data (fit.start=grid); these fits "
                          "started at the true parameters")
    idx = [int(f["index"]) for f in fits]
    data = sim.sample_batch(seed, "test", idx)
    draws = sim.draw_batch(seed, "test", np.asarray(idx))
    maps = [fitted_smooth_maps(sim, draws, k, f) for k, f in enumerate(fits)]
    f0 = np.stack([m[0] for m in maps]).astype(np.float64)
    v0 = np.stack([m[1] for m in maps]).astype(np.float64)
    with_velocity = np.array([f.get("dataset") == "flux_velocity" for f in fits])
    peak = f0.reshape(len(idx), -1).max(axis=1)
    model_mask = f0 > float(sim.noise.mask_frac_of_peak) * peak[:, None, None]
    model_mask &= with_velocity[:, None, None]
    return add_residuals(data, f0, v0, model_mask, draws, sim.noise)


def hybrid_scores(runs: Mapping[str, Any], names: Sequence[str], condition: Sequence[str],
                  samples: Mapping[str, np.ndarray]) -> np.ndarray:
    """(n_runs, n) P(subhalo) of each oracle-residual run ``names`` on the fitted residuals ``samples``."""
    from lensml.analysis.scoring import load_net, predict, run_config

    out = []
    for name in names:
        cfg = run_config(runs[name], list(condition))
        if not cfg.data.get("oracle_residual", False):
            raise ConfigError(f"study fit_detect.hybrid: run {name} was not trained on residuals; its "
                              "variant needs data.oracle_residual=true")
        out.append(predict(load_net(runs[name], cfg), cfg, samples))
    return np.stack(out)

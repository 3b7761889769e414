"""Fit, then a CNN on the residuals: the hybrid detector of issue 15.

The CNN is a run trained on the *oracle* residuals (``data.oracle_residual=true``: ``(data - true smooth
model) / sigma``, ``lensml.data.oracle``), which detects a subhalo almost perfectly when the smooth model is
known. The hybrid feeds it the residuals about the *fitted* smooth model instead (``lensml.inference.fit``:
the fit of each test sample, cached by ``lensml.fit_detect``), in units of the reported sigmas (what an
observer has), so it needs fits on the test samples only. Its AUC against the fit's own score (Delta chi^2)
and against the same CNN on the oracle residuals says how much of the oracle bound survives a fitted,
imperfect smooth model.

Residual maps (as ``lensml.data.oracle.smooth_residuals``, with the fitted model ``f0``, ``v0``):
``flux_resid_z = (flux - f0) / flux_sigma`` in every pixel; ``velocity_resid_z = (velocity - v0) /
sigma_v_kms`` inside the observed mask and the fitted model's noiseless mask (``f0`` above
``noise.mask_frac_of_peak`` of its peak), 0 elsewhere (and 0 for a flux-only fit, which has no velocity
model); ``resid_mask`` marks those pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

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
    idx = [int(f["index"]) for f in fits]
    data = sim.sample_batch(seed, "test", idx)
    draws = sim.draw_batch(seed, "test", np.asarray(idx))
    maps = [fitted_smooth_maps(sim, draws, k, f) for k, f in enumerate(fits)]
    f0 = np.stack([m[0] for m in maps]).astype(np.float64)
    v0 = np.stack([m[1] for m in maps]).astype(np.float64)
    with_velocity = np.array([f.get("dataset") == "flux_velocity" for f in fits])
    peak = f0.reshape(len(idx), -1).max(axis=1)
    model_mask = f0 > float(sim.noise.mask_frac_of_peak) * peak[:, None, None]
    m = np.asarray(data["mask"], bool) & model_mask & with_velocity[:, None, None]
    floor = 1e-12 * np.maximum(peak, 1e-300)[:, None, None]
    sig_f = np.maximum(np.asarray(data["flux_sigma"], np.float64), floor)
    sig_v = np.maximum(np.asarray(data["sigma_v_kms"], np.float64), 1e-6)
    data["flux_resid_z"] = ((np.asarray(data["flux"], np.float64) - f0) / sig_f).astype(np.float32)
    data["velocity_resid_z"] = np.where(m, (np.asarray(data["velocity"], np.float64) - v0) / sig_v,
                                        0.0).astype(np.float32)
    data["resid_mask"] = m
    return data


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

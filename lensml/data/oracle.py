"""The true smooth model of a sample and its residuals: the yardstick inputs of the reference detectors.

The *smooth model* of sample i of (seed, split) is the same draw (macro lens, source, peak S/N, line width)
rendered noiselessly without its subhalo (``Simulator.draw_batch`` then ``render_noiseless`` with
``present = False``, as in ``lensml.analysis.signal``). Its per-pixel noise sigmas are those of the noise
model (``lensml.sim.velocity_noise``) evaluated on the smooth flux and its peak: flux ``sigma_f``, velocity
``sigma_v`` (km/s, capped at ``noise.sigma_v_max_kms``). Residuals in units of sigma:

- ``flux_resid_z = (flux - f0) / sigma_f`` in every pixel (unit-variance noise under "no subhalo");
- ``velocity_resid_z = (velocity - v0) / sigma_v`` inside the observed mask and the smooth model's noiseless
  mask, 0 elsewhere; ``resid_mask`` marks those pixels.

An observer who knew the smooth model would see exactly these maps: ``data.oracle_residual=true`` feeds them
to the CNN in place of flux and velocity (an upper bound on what a network that had solved the macro model
could reach); ``lensml.analysis.reference`` turns them into the chi-square detector.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lensml.data.channels import layout, velocity_weight

#: extra sample keys an ``OracleResidualSource`` adds
RESIDUAL_KEYS: tuple[str, ...] = ("flux_resid_z", "velocity_resid_z", "resid_mask")


def smooth_residuals(sim: Any, seed: int, split: str, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Samples ``indices`` of ``split`` (``sample_batch`` dict) plus ``RESIDUAL_KEYS`` (module docstring)."""
    idx = [int(i) for i in indices]
    data = sim.sample_batch(seed, split, idx)
    draws = sim.draw_batch(seed, split, np.asarray(idx))
    smooth = sim.render_noiseless(dataclasses.replace(draws, present=np.zeros(len(idx), bool)), split)
    return add_residuals(data, smooth["flux"], smooth["velocity"], smooth["mask"], draws, sim.noise)


def add_residuals(data: dict[str, np.ndarray], f0: np.ndarray, v0: np.ndarray, model_mask: np.ndarray,
                  draws: Any, noise: Any) -> dict[str, np.ndarray]:
    """``data`` with ``RESIDUAL_KEYS`` about the smooth model ``f0`` (flux units), ``v0`` (km/s), noiseless
    mask ``model_mask``: the noise model's sigmas on ``f0`` and its peak with the draws' peak S/N and line
    width (module docstring); velocity residuals inside the observed mask and ``model_mask`` only."""
    from lensml.sim.velocity_noise import flux_sigma, velocity_sigma_kms

    f0 = np.asarray(f0, np.float64)
    peak = f0.reshape(len(f0), -1).max(axis=1)
    sig_f = flux_sigma(f0, peak, draws.peak_snr, noise.background_sigma_frac)
    sig_f = np.maximum(sig_f, 1e-12 * np.maximum(peak, 1e-300)[:, None, None])
    sig_v = velocity_sigma_kms(f0, peak, draws.peak_snr, noise.background_sigma_frac, draws.sigma_line_kms,
                               noise.kappa, noise.sigma_v_floor_kms, noise.sigma_v_max_kms)
    m = np.asarray(data["mask"], bool) & np.asarray(model_mask, bool)
    dv = data["velocity"].astype(np.float64) - v0
    zv = np.where(m, dv / np.maximum(sig_v, 1e-6), 0.0)
    data["flux_resid_z"] = ((data["flux"] - f0) / sig_f).astype(np.float32)
    data["velocity_resid_z"] = zv.astype(np.float32)
    data["resid_mask"] = m
    return data


class OracleResidualSource:
    """A ``SimulatorSource`` twin whose samples carry ``RESIDUAL_KEYS`` (renders each draw twice)."""

    curriculum = None

    def __init__(self, sim_cfg: Any, seed: int) -> None:
        self.sim_cfg, self.seed, self._sim = sim_cfg, int(seed), None

    @property
    def simulator(self) -> Any:
        if self._sim is None:
            from lensml.sim import simulator as sim_mod

            self._sim = sim_mod.build_simulator(self.sim_cfg)
        return self._sim

    def get(self, split: str, indices: np.ndarray, n: int) -> dict[str, np.ndarray]:
        return smooth_residuals(self.simulator, self.seed, split, indices)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_sim": None}


def stack_residuals(mode: str, data: dict[str, np.ndarray], sigma_v_ref_kms: float) -> np.ndarray:
    """(B, C, N, N) float32 CNN input of ``mode`` with the residuals in place of flux and velocity: flux ->
    ``flux_resid_z``, velocity -> ``velocity_resid_z``, mask -> ``resid_mask``, weight -> the usual weight
    channel (``lensml.data.channels.velocity_weight``) on ``resid_mask``."""
    parts = []
    for name in layout(mode).channels:
        if name == "flux":
            parts.append(np.asarray(data["flux_resid_z"], np.float32))
        elif name == "velocity":
            parts.append(np.asarray(data["velocity_resid_z"], np.float32))
        elif name == "mask":
            parts.append(np.asarray(data["resid_mask"], bool).astype(np.float32))
        else:
            parts.append(velocity_weight(data["sigma_v_kms"], data["resid_mask"], sigma_v_ref_kms))
    return np.stack(parts, axis=1)

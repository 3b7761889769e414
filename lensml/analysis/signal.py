"""How strong is a subhalo's imprint, per channel, compared with the noise? (ideal-observer signal-to-noise)

For each test sample of a mass bin, the same draw (lens, source, subhalo position, peak S/N, line width) is
rendered noiselessly with and without its subhalo (``LensSimulator.draw_batch`` / ``render_noiseless``). Per
pixel, the perturbation is divided by that pixel's noise sigma under the configured noise model
(``lensml.sim.velocity_noise``): flux ``sigma_f = sqrt(f peak / peak_snr^2 + (background_sigma_frac
peak)^2)``; velocity ``sigma_v = sqrt((kappa sigma_line / SNR_pix)^2 + floor^2)`` (capped), inside both
noiseless masks, for each velocity floor of the sweep (``sigma_v_floors_kms``; the configured
``noise.sigma_v_floor_kms`` if none). Reported per sample: ``max |delta| / sigma`` and the matched-filter S/N
``sqrt(sum (delta / sigma)^2)`` of each channel, and the gain of flux + velocity over flux alone,
``sqrt(S/N_f^2 + S/N_v^2) / S/N_f``: what an observer who knew the unperturbed image exactly could reach (it
marginalises over nothing; a detector that must infer the smooth model does worse).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from lensml.analysis.scoring import compose_train_config
from lensml.data.cache import physics_config


def _quantiles(x: np.ndarray) -> dict[str, float]:
    return {
        "median": float(np.median(x)),
        "p10": float(np.quantile(x, 0.1)),
        "p90": float(np.quantile(x, 0.9)),
    }


def floor_key(floor_kms: float) -> str:
    """The summary key of a velocity floor: ``"3"``, ``"10"``, ``"2.5"`` (km/s)."""
    return f"{float(floor_kms):g}"


def perturbation_snr(
    cfg: DictConfig, n: int, seed: int = 0, floors_kms: Sequence[float] | None = None
) -> dict[str, Any]:
    """Signal-to-noise statistics of ``n`` test draws of ``cfg`` (every draw gets its subhalo).

    Flux statistics at the top level; velocity statistics (``velocity_snr``, ``velocity_max``, ``gain``) per
    velocity floor under ``velocity[floor_key(floor)]``.
    """
    from lensml.sim.simulator import build_simulator
    from lensml.sim.velocity_noise import flux_sigma, velocity_sigma_kms

    cfg = copy.deepcopy(cfg)
    OmegaConf.update(cfg, "subhalo.p_present", 1.0)
    sim = build_simulator(physics_config(cfg))
    nz = sim.noise
    floors = [float(nz.sigma_v_floor_kms)] if floors_kms is None else [float(f) for f in floors_kms]
    draws = sim.draw_batch(seed, "test", np.arange(n))
    with_sub = sim.render_noiseless(draws, "test")
    without = sim.render_noiseless(dataclasses.replace(draws, present=np.zeros(n, bool)), "test")
    f0 = without["flux"].astype(np.float64)
    peak = f0.reshape(n, -1).max(axis=1)
    df = with_sub["flux"] - f0
    sig_f = flux_sigma(f0, peak, draws.peak_snr, nz.background_sigma_frac)
    zf = df / np.maximum(sig_f, 1e-12 * peak[:, None, None])
    flat = (n, -1)
    flux_snr = np.sqrt((zf**2).reshape(flat).sum(axis=1))
    m = without["mask"] & with_sub["mask"]
    dv = np.where(m, with_sub["velocity"].astype(np.float64) - without["velocity"], 0.0)
    out: dict[str, Any] = {
        "flux_snr": _quantiles(flux_snr),
        "flux_max": _quantiles(np.abs(zf).reshape(flat).max(axis=1)),
        "flux_max_rel": _quantiles(np.abs(df).reshape(flat).max(axis=1) / peak),
        "velocity_max_kms": _quantiles(np.abs(dv).reshape(flat).max(axis=1)),
        "velocity": {},
    }
    for floor in floors:
        sig_v = velocity_sigma_kms(
            f0, peak, draws.peak_snr, nz.background_sigma_frac, draws.sigma_line_kms, nz.kappa, floor,
            nz.sigma_v_max_kms,
        )
        zv = np.where(m, dv / np.maximum(sig_v, 1e-6), 0.0)
        v_snr = np.sqrt((zv**2).reshape(flat).sum(axis=1))
        gain = np.sqrt(flux_snr**2 + v_snr**2) / np.maximum(flux_snr, 1e-300)
        out["velocity"][floor_key(floor)] = {
            "velocity_snr": _quantiles(v_snr),
            "velocity_max": _quantiles(np.abs(zv).reshape(flat).max(axis=1)),
            "gain": _quantiles(gain),
        }
    return out


def run_signal(spec: dict[str, Any], common: list[str], scale: str) -> dict[str, Any]:
    """``spec``: ``mass_bins``, ``noise`` (list of noise group names), ``n`` / ``n_tiny`` samples per bin,
    ``sigma_v_floors_kms`` (optional sweep of the velocity floor). Summary version 2."""
    n = int(spec.get("n_tiny" if scale == "tiny" else "n", 256))
    floors = spec.get("sigma_v_floors_kms")
    result: dict[str, Any] = {"version": 2, "n_per_bin": n, "sigma_v_floors_kms": floors, "noise": {}}
    for noise in spec.get("noise", ["nominal"]):
        base = compose_train_config([*common, f"noise={noise}"])
        bins = []
        for mb in spec["mass_bins"]:
            cfg = copy.deepcopy(base)
            OmegaConf.update(cfg, "subhalo.mass_bin", float(mb))
            stats = perturbation_snr(cfg, n, floors_kms=floors)
            bins.append({"mass_bin": float(mb), **stats})
        result["noise"][noise] = {"bins": bins}
    return result

"""How strong is a subhalo's imprint, per channel, compared with the noise? (ideal-observer signal-to-noise)

For each test sample of a mass bin, the same draw (lens, source, subhalo position) is rendered noiselessly
with and without its subhalo (``LensSimulator.draw`` / ``render_noiseless``). Per pixel, the perturbation is
divided by that pixel's noise sigma of the configured noise model (``lensml.sim.instrument``):
flux ``sigma_f = sqrt(f peak / peak_snr^2 + (background_sigma_frac peak)^2)``; velocity
``sigma_v = min(sigma_v_kms sqrt(peak / f), sigma_v_max_kms)`` inside both masks. Reported per sample:
``max |delta| / sigma`` and the matched-filter S/N ``sqrt(sum (delta / sigma)^2)`` of each channel (what an
observer who knew the unperturbed image exactly could reach; a CNN that must infer it does worse).
"""

from __future__ import annotations

import copy
import dataclasses
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


def perturbation_snr(cfg: DictConfig, n: int, seed: int = 0) -> dict[str, Any]:
    """Signal-to-noise statistics of ``n`` test draws of ``cfg`` (every draw gets its subhalo)."""
    from lensml.sim.simulator import build_simulator

    cfg = copy.deepcopy(cfg)
    OmegaConf.update(cfg, "subhalo.p_present", 1.0)
    sim = build_simulator(physics_config(cfg))
    draws = [sim.draw(seed, "test", i)[0] for i in range(n)]
    with_sub = sim.render_noiseless(draws, "test")
    without = sim.render_noiseless([dataclasses.replace(d, present=False) for d in draws], "test")
    nz = cfg.noise
    out: dict[str, list[float]] = {
        k: []
        for k in ("flux_max", "flux_snr", "velocity_max", "velocity_snr", "flux_max_rel", "velocity_max_kms")
    }
    for b in range(n):
        f0 = without["flux"][b].astype(np.float64)
        peak = float(f0.max())
        df = with_sub["flux"][b] - f0
        sig_f = np.sqrt(
            np.clip(f0, 0, None) * peak / float(nz.peak_snr) ** 2
            + (float(nz.background_sigma_frac) * peak) ** 2
        )
        zf = df / np.maximum(sig_f, 1e-12 * peak)
        m = without["mask"][b] & with_sub["mask"][b]
        sig_v = np.minimum(
            float(nz.sigma_v_kms) * np.sqrt(peak / np.clip(f0, peak * 1e-6, None)), float(nz.sigma_v_max_kms)
        )
        dv = (with_sub["velocity"][b] - without["velocity"][b])[m]
        zv = dv / np.maximum(sig_v[m], 1e-6)
        out["flux_max"].append(float(np.abs(zf).max()))
        out["flux_snr"].append(float(np.sqrt((zf**2).sum())))
        out["flux_max_rel"].append(float(np.abs(df).max() / peak))
        out["velocity_max"].append(float(np.abs(zv).max()) if zv.size else 0.0)
        out["velocity_snr"].append(float(np.sqrt((zv**2).sum())) if zv.size else 0.0)
        out["velocity_max_kms"].append(float(np.abs(dv).max()) if dv.size else 0.0)
    return {k: _quantiles(np.asarray(v)) for k, v in out.items()}


def run_signal(spec: dict[str, Any], common: list[str], scale: str) -> dict[str, Any]:
    """``spec``: ``mass_bins``, ``noise`` (list of noise group names), ``n`` / ``n_tiny`` samples per bin."""
    n = int(spec.get("n_tiny" if scale == "tiny" else "n", 256))
    result: dict[str, Any] = {"n_per_bin": n, "noise": {}}
    for noise in spec.get("noise", ["nominal"]):
        base = compose_train_config([*common, f"noise={noise}"])
        bins = []
        for mb in spec["mass_bins"]:
            cfg = copy.deepcopy(base)
            OmegaConf.update(cfg, "subhalo.mass_bin", float(mb))
            stats = perturbation_snr(cfg, n)
            bins.append({"mass_bin": float(mb), **stats})
        result["noise"][noise] = {"bins": bins}
    return result

"""Near-real cases: real MaNGA galaxies as sources behind a plausible lens, scored by trained checkpoints.

For every MaNGA MAPS file in the shared folder (``lensml.paths.shared_manga_dir()``; the canonical galaxies
too when their files are there), the source tensor is made with ``lensml.data.source_tensor.prepare_source``
and rendered with the explicit-source API (``lensml.sim.render.render_lensed``) through an SIE + shear lens
(``spec.lens``, theta_E ~ 1 arcsec) for three cases: no subhalo, a subhalo ON the arc (the brightest pixel of
the unperturbed arc within +-0.15 arcsec of the Einstein ring) and a subhalo OFF the arc (at theta_E, at the
position angle where the unperturbed arc is faintest), for each TNFW mass in ``spec.mass_msun``.
Noise (``lensml.sim.instrument.add_noise``) uses the run's noise settings; each case is scored on
``spec.n_noise`` noise realisations (the same realisations with and without the subhalo) and the mean and
spread of P(subhalo) over them and over seeds are reported. Occlusion maps: a ``patch`` x ``patch`` pixel
square (stride ``stride``) is set to 0 in the normalised input (all channels, and for two-channel models
also each channel alone); the map is P(unoccluded) - P(occluded), averaged over noise realisations and seeds.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lensml.analysis.scoring import Run, compose_train_config, load_net
from lensml.atomic_io import save_npz
from lensml.data.channels import InputNorm, layout, stack_channels
from lensml.paths import shared_manga_dir

log = logging.getLogger(__name__)

POSITIONS = ("on_arc", "off_arc")


def case_names(masses: list[float]) -> list[str]:
    """``none`` and ``<position>_<mass>`` for every mass (e.g. ``on_arc_1e+10``)."""
    return ["none", *[f"{p}_{m:.0e}" for m in masses for p in POSITIONS]]


def prepare_sources(out_dir: Path) -> list[Path]:
    """Source tensors of every MAPS file in the shared MaNGA folder (made once into ``out_dir``)."""
    from lensml.data.source_tensor import prepare_source

    maps = sorted(shared_manga_dir().glob("*MAPS*.fits*"))
    out = []
    for m in maps:
        plateifu = "-".join(m.name.split("-")[1:3])
        have = sorted(out_dir.glob(f"source_tensor_{plateifu}.npy"))
        out.append(have[0] if have else prepare_source(m, out_dir, preview=False))
    return out


def _lens(
    spec: dict[str, Any], sub: dict[str, float] | None, cfg: Any, mass_msun: float = 0.0
) -> tuple[list[str], list[dict]]:
    from lensml.sim.subhalo import subhalo_kwargs

    lens = dict(spec["lens"])
    macro = {k: float(lens[k]) for k in ("theta_E", "e1", "e2", "center_x", "center_y")}
    shear = {"gamma1": float(lens["gamma1"]), "gamma2": float(lens["gamma2"])}
    models = ["SIE", "SHEAR"]
    kwargs: list[dict] = [macro, shear]
    if sub is not None:
        from lensml.sim.cosmology import lens_distances
        from lensml.sim.subhalo_tidal import kpc_per_arcsec, median_depth_r3d_kpc

        # the subhalo's 3D distance: its projected one and the median |z| of the configured depth prior
        dist = lens_distances(float(cfg.lens.z_lens), float(cfg.lens.z_source), str(cfg.lens.cosmology))
        r_proj = math.hypot(sub["x"] - macro["center_x"], sub["y"] - macro["center_y"]) * kpc_per_arcsec(dist)
        depth = cfg.subhalo.get("depth") or {}
        r3d = median_depth_r3d_kpc(
            r_proj, macro["theta_E"], dist, depth.get("prior", "uniform"), float(depth.get("r_max_r200", 1.0))
        )
        models.append(str(cfg.subhalo.profile))
        kwargs.append(
            subhalo_kwargs(
                str(cfg.subhalo.profile),
                float(mass_msun),
                float(cfg.lens.z_lens),
                float(cfg.lens.z_source),
                str(cfg.lens.cosmology),
                concentration=cfg.subhalo.concentration,
                tau_trunc=float(cfg.subhalo.tau_trunc),
                center_x=sub["x"],
                center_y=sub["y"],
                truncation=str(cfg.subhalo.get("truncation", "fixed")),
                r3d_kpc=r3d,
                host_theta_e=macro["theta_E"],
            )
        )
    return models, kwargs


def render_cases(spec: dict[str, Any], tensor_path: Path, cfg: Any) -> dict[str, Any]:
    """Noiseless renders of the three cases and the subhalo positions (arcsec)."""
    from lensml.sim.render import SourceGrids, render_lensed
    from lensml.sim.simulator import _instrument
    from lensml.sources.template import load_templates

    lib = load_templates([tensor_path])
    src = SourceGrids(
        flux=lib.flux,
        velocity_kms=lib.velocity_kms,
        center_x=float(spec["source_x_arcsec"]),
        center_y=float(spec["source_y_arcsec"]),
        half_size_arcsec=float(spec["source_size_arcsec"]) / 2,
        rotation_deg=float(spec.get("source_rotation_deg", 0.0)),
    )
    inst = _instrument(dict(cfg.instrument))
    mfrac = float(cfg.noise.mask_frac_of_peak)
    base = render_lensed(src, *_lens(spec, None, cfg), inst, mfrac, backend="lenstronomy")
    n, scale = inst.n_pix, inst.pixel_scale_arcsec
    c = (np.arange(n) - (n - 1) / 2) * scale
    xx, yy = np.meshgrid(c, c)
    te = float(spec["lens"]["theta_E"])
    r = np.hypot(xx - spec["lens"]["center_x"], yy - spec["lens"]["center_y"])
    ring = np.abs(r - te) < 0.15
    f = base["flux"][0]
    on = np.unravel_index(np.argmax(np.where(ring, f, -np.inf)), f.shape)
    ang = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    px = spec["lens"]["center_x"] + te * np.cos(ang)
    py = spec["lens"]["center_y"] + te * np.sin(ang)
    cols = np.clip(np.round(px / scale + (n - 1) / 2).astype(int), 0, n - 1)
    rows = np.clip(np.round(py / scale + (n - 1) / 2).astype(int), 0, n - 1)
    k = int(np.argmin(f[rows, cols]))
    subs = {
        "on_arc": {"x": float(xx[on]), "y": float(yy[on])},
        "off_arc": {"x": float(px[k]), "y": float(py[k])},
    }
    out: dict[str, Any] = {"subs": subs, "maps": {"none": base}}
    for m in masses(spec):
        for pos, sub in subs.items():
            out["maps"][f"{pos}_{m:.0e}"] = render_lensed(
                src, *_lens(spec, sub, cfg, m), inst, mfrac, backend="lenstronomy"
            )
    return out


def masses(spec: dict[str, Any]) -> list[float]:
    m = spec["mass_msun"]
    return [float(x) for x in (m if isinstance(m, list | tuple) else [m])]


def noisy_inputs(maps: dict[str, np.ndarray], cfg: Any, n_noise: int, seed: int) -> dict[str, np.ndarray]:
    """``n_noise`` noise realisations (B, N, N) of one noiseless render (realisation k: seed (seed, k))."""
    from lensml.sim.instrument import add_noise, final_mask, noise_keys, reported_sigmas
    from lensml.sim.priors import quantile
    from lensml.sim.simulator import TEMPLATE_SIGMA0_KMS, _instrument, _noise
    from lensml.sim.velocity_noise import line_sigma_kms

    noise = _noise(dict(cfg.noise))
    rep = {k: np.repeat(np.asarray(maps[k]), n_noise, axis=0) for k in ("flux", "velocity", "mask")}
    rngs = [np.random.default_rng([seed, k]) for k in range(n_noise)]
    keys = noise_keys(rngs)  # first: the noise seeds as before; then each realisation's peak S/N
    snr = None if noise.peak_snr is None else [float(quantile(noise.peak_snr, r.random())) for r in rngs]
    sigma0 = cfg.source.get("template_sigma0_kms", TEMPLATE_SIGMA0_KMS)  # the cases are MaNGA templates
    line = line_sigma_kms(sigma0, _instrument(dict(cfg.instrument)).resolving_power)
    flux, vel = add_noise(rep["flux"], rep["velocity"], rep["mask"], noise, keys, line, snr)
    # the mask the velocity was cut with (observed: from the noisy flux), and the reported error maps
    mask = final_mask(flux, rep["mask"], noise, snr)
    sigma_v, sigma_f = reported_sigmas(flux, noise, line, snr)
    return {"flux": flux, "velocity": vel, "mask": mask, "sigma_v_kms": sigma_v, "flux_sigma": sigma_f}


@torch.no_grad()
def occlusion(
    net: torch.nn.Module, x: np.ndarray, patch: int, stride: int, channels: list[int]
) -> np.ndarray:
    """Mean over the batch of P(x) - P(x with the patch of ``channels`` zeroed): (n_pos, n_pos) map."""
    xt = torch.from_numpy(x)
    p0 = torch.softmax(net(xt), 1)[:, 1]
    n = x.shape[-1]
    starts = list(range(0, n - patch + 1, stride))
    out = np.zeros((len(starts), len(starts)))
    for i, r in enumerate(starts):
        occl = []
        for c0 in starts:
            xo = xt.clone()
            xo[:, channels, r : r + patch, c0 : c0 + patch] = 0.0
            occl.append(xo)
        p = torch.softmax(net(torch.cat(occl)), 1)[:, 1].reshape(len(starts), -1)
        out[i] = (p0[None, :] - p).mean(dim=1).numpy()
    return out


def run_near_real(
    spec: dict[str, Any], runs: dict[str, Run], sources_dir: Path, arrays_dir: Path, scale: str = "full",
    prefix: str = "near_real",
) -> dict[str, Any]:
    """Score the cases with every run of ``spec.variants``; return the summary.

    Source tensors are made in ``sources_dir``; the example maps and occlusion maps are written (float16) to
    ``arrays_dir/<prefix>_<plateifu>.npz`` for the report (``prefix``: the study's name).
    """
    sources = prepare_sources(sources_dir)
    n_noise = int(spec.get("n_noise_tiny" if scale == "tiny" else "n_noise", 16))
    patch, stride = int(spec.get("patch", 8)), int(spec.get("stride", 4))
    n_occ = min(n_noise, int(spec.get("occlusion_n_noise", n_noise)))  # realisations used for occlusion maps
    occ_masses = [float(m) for m in spec["occlusion_masses"]] if spec.get("occlusion_masses") else None
    result: dict[str, Any] = {"spec": {k: v for k, v in spec.items()}, "galaxies": {}}
    for src_path in sources:
        plateifu = src_path.stem.removeprefix("source_tensor_")
        gal: dict[str, Any] = {"variants": {}}
        arrays: dict[str, np.ndarray] = {}
        first_cfg = None
        for variant in spec["variants"]:
            names = [n for n, r in runs.items() if r.meta.get("variant") == variant]
            cases = case_names(masses(spec))
            probs: dict[str, list[np.ndarray]] = {c: [] for c in cases}
            occ: dict[str, list[np.ndarray]] = {}
            for name in names:
                run = runs[name]
                cfg = compose_train_config(run.overrides, run.run_dir)
                if first_cfg is None:
                    first_cfg = cfg
                    rendered = render_cases(spec, src_path, cfg)
                    gal["subhalo_positions_arcsec"] = rendered["subs"]
                    noisy = {
                        c: noisy_inputs(m, cfg, n_noise, int(spec.get("noise_seed", 0)))
                        for c, m in rendered["maps"].items()
                    }
                    for c in noisy:
                        arrays[f"{c}__flux"] = noisy[c]["flux"][0]
                        arrays[f"{c}__velocity"] = noisy[c]["velocity"][0]
                net = load_net(run, cfg)
                mode = str(cfg.data.channels)
                for c in cases:
                    norm = InputNorm.from_cfg(cfg.data)
                    x = stack_channels(
                        mode,
                        noisy[c]["flux"],
                        noisy[c]["velocity"],
                        norm.velocity_scale_kms,
                        norm.flux_quantile,
                        mask=noisy[c]["mask"],
                        sigma_v_kms=noisy[c]["sigma_v_kms"],
                        flux_sigma=noisy[c]["flux_sigma"],
                        flux_norm=norm.flux_norm,
                        flux_snr_scale=norm.flux_snr_scale,
                        sigma_v_ref_kms=norm.sigma_v_ref_kms,
                    )
                    with torch.no_grad():
                        probs[c].append(torch.softmax(net(torch.from_numpy(x)), 1)[:, 1].numpy())
                    if c != "none" and (
                        occ_masses is None or any(c.endswith(f"_{m:.0e}") for m in occ_masses)
                    ):
                        sets = {"all": list(range(x.shape[1]))}
                        chans = layout(mode).channels
                        if x.shape[1] >= 2 and chans[0] == "flux":  # flux first, the rest after
                            sets.update(flux=[0], **{"velocity" if "velocity" in chans else chans[1]:
                                                     list(range(1, x.shape[1]))})
                        for tag, chans in sets.items():
                            occ.setdefault(f"{c}__{tag}", []).append(
                                occlusion(net, x[:n_occ], patch, stride, chans)
                            )
            gal["variants"][variant] = {
                c: {
                    "mean": float(np.mean(probs[c])),
                    "std_noise": float(np.mean([p.std() for p in probs[c]])),
                    "seed_means": [float(p.mean()) for p in probs[c]],
                }
                for c in cases
            }
            for key, maps in occ.items():
                arrays[f"occ__{variant}__{key}"] = np.mean(maps, axis=0)
        gal["arrays"] = f"{prefix}_{plateifu}.npz"
        save_npz(arrays_dir / gal["arrays"], **{k: v.astype(np.float16) for k, v in arrays.items()})
        result["galaxies"][plateifu] = gal
    result["occlusion"] = {
        "patch_pix": patch,
        "stride_pix": stride,
        "n_noise": n_noise,
        "n_noise_occlusion": n_occ,
    }
    result["cases"] = case_names(masses(spec))
    return result

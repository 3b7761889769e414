"""One draw's linearised detection significance, per mass bin, data set and nuisance set.

For sample i (the same lens, source, subhalo position and noise parameters in every mass bin: only the
subhalo's mass uniform is mapped into each bin), the smooth model is rendered once with the Jacobian of
(flux, velocity) w.r.t. every parametric nuisance (``renderer.jacobian``) and, if asked, the response of a
pixelated source (``pixelated.response``). Each mass bin's perturbation ``d = data(with subhalo) -
data(without)`` is whitened with the ideal observer's per-pixel noise (``lensml.analysis.signal``: from
the smooth noiseless flux, the drawn peak S/N and line width; velocity inside both noiseless masks) and its
significance is ``sqrt(Delta chi^2)`` after marginalising each nuisance set (``fisher.delta_chi2``).
Data sets: ``flux`` and ``flux+velocity@<floor>`` for each velocity noise floor (km/s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from lensml.errors import ConfigError
from lensml.inference import physics
from lensml.inference.fisher import (
    delta_chi2_many,
    difference_operator,
    regularisation_lambda,
)
from lensml.inference.pixelated import response, true_nodes
from lensml.inference.renderer import DTYPE, Scene, build_scene, jacobian, nuisance_names, render

#: Nuisance groups a marginalisation may name (``renderer.nuisance_names`` + the pixelated source).
GROUPS: tuple[str, ...] = ("macro", "source", "bulge", "clumps", "pixelated")


@dataclass
class Settings:
    """``forecast.*`` settings used per draw (see conf/forecast.yaml)."""

    marginalisations: dict[str, list[str]]
    floors_kms: list[float]
    pixel_n: int = 16
    pixel_extent: float = 0.6
    regularisation: str = "curvature"
    lambda_scale: float = 1.0
    source_mode: str = "grid"
    split: str = "test"
    cube_channels: int = 0  # > 0: the data set cube@<n> (parametric marginalisations only)
    cube_v_range_kms: float = 400.0
    datasets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, groups in self.marginalisations.items():
            bad = [g for g in groups if g not in GROUPS]
            if bad:
                raise ConfigError(
                    f"forecast.marginalise.{name}={list(groups)}: unknown group(s) {bad}; use {list(GROUPS)}."
                )
        self.datasets = ["flux", *(dataset_key(f) for f in self.floors_kms)]
        if self.cube_channels:
            self.datasets.append(f"cube@{self.cube_channels}")


def dataset_key(floor_kms: float) -> str:
    return f"flux+velocity@{float(floor_kms):g}"


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def smooth_model(sim: physics.LensSimulator, draws: physics.DrawBatch, i: int, st: Settings) -> dict:
    """Sample i's smooth model: scene, parameters, data, Jacobian columns (flux and velocity) and prior."""
    scene, theta = build_scene(sim, draws, i, st.split, st.source_mode)
    groups = sorted(
        {g for gs in st.marginalisations.values() for g in gs if g != "pixelated"}, key=GROUPS.index
    )
    names = nuisance_names(scene, groups)
    out, jac = jacobian(scene, theta, names, with_subhalo=False)
    f0, v0 = _np(out[0]), _np(out[1])
    n2 = f0.size
    cols_f = [_np(jac[0]).reshape(n2, -1)]
    cols_v = [_np(jac[1]).reshape(n2, -1)]
    labels = list(names)
    prior_blocks: list[tuple[slice, np.ndarray]] = []
    if any("pixelated" in gs for gs in st.marginalisations.values()):
        a = _np(response(scene, theta, st.pixel_n, st.pixel_extent)).reshape(st.pixel_n**2, n2).T
        f_safe = np.where(f0 > 0, f0, 1.0).reshape(n2, 1)
        vv = v0.reshape(n2, 1)
        cols_f += [a, np.zeros_like(a)]
        cols_v += [-vv * a / f_safe, a / f_safe]
        d = difference_operator(st.pixel_n, st.regularisation)
        s_f, s_fv = true_nodes(scene, theta, st.pixel_n, st.pixel_extent)
        start = len(labels)
        p = st.pixel_n**2
        for k, s_true in enumerate((s_f, s_fv)):
            lam = regularisation_lambda(d, s_true, st.lambda_scale)
            prior_blocks.append((slice(start + k * p, start + (k + 1) * p), lam * (d.T @ d)))
        labels += [f"pix.f.{j}" for j in range(p)] + [f"pix.fv.{j}" for j in range(p)]
    return {
        "scene": scene,
        "theta": theta,
        "f0": f0,
        "v0": v0,
        "jf": np.hstack(cols_f),
        "jv": np.hstack(cols_v),
        "labels": labels,
        "prior_blocks": prior_blocks,
    }


def columns(labels: Sequence[str], scene: Scene, groups: Sequence[str]) -> np.ndarray:
    """Column indices of a nuisance set."""
    want = set(nuisance_names(scene, [g for g in groups if g != "pixelated"]))
    idx = [j for j, lab in enumerate(labels) if lab in want]
    if "pixelated" in groups:
        idx += [j for j, lab in enumerate(labels) if lab.startswith("pix.")]
    return np.asarray(idx, dtype=int)


def _prior(model: dict, n_cols: int) -> np.ndarray:
    prior = np.zeros((n_cols, n_cols))
    for sl, block in model["prior_blocks"]:
        prior[sl, sl] = block
    return prior


def draw_significance(
    sims: Sequence[physics.LensSimulator],
    draws: Sequence[physics.DrawBatch],
    i: int,
    st: Settings,
    model: dict | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """``{dataset: {marginalisation: significance per mass bin (n_bins,)}}`` of sample ``i``.

    ``sims[b]`` / ``draws[b]``: the simulator and draws of mass bin b (same seed, split and indices).
    """
    model = model or smooth_model(sims[0], draws[0], i, st)
    scene, theta, f0, v0 = model["scene"], model["theta"], model["f0"], model["v0"]
    jf, jv = model["jf"], model["jv"]
    n2 = f0.size
    peak = float(f0.max())
    frac = scene.mask_frac_of_peak
    mask0 = (f0 > frac * peak).reshape(n2)
    sig_f, _ = physics.noise_sigmas(sims[0], f0, draws[0], i, 5.0)
    sig_f = np.maximum(sig_f, 1e-12 * peak).reshape(n2)
    gf = jf / sig_f[:, None]
    hf = gf.T @ gf
    prior = _prior(model, jf.shape[1])
    sig_v = {}
    for floor in st.floors_kms:
        sig_v[floor] = np.maximum(physics.noise_sigmas(sims[0], f0, draws[0], i, floor)[1], 1e-6).reshape(n2)
    gv = {fl: jv[mask0] / sig_v[fl][mask0, None] for fl in st.floors_kms}
    col_sets = {name: columns(model["labels"], scene, gs) for name, gs in st.marginalisations.items()}
    n_bins = len(sims)
    zz = {ds: np.zeros(n_bins) for ds in st.datasets}
    bb = {ds: np.zeros((jf.shape[1], n_bins)) for ds in st.datasets}
    for b, (sim, dr) in enumerate(zip(sims, draws)):
        kw = physics.subhalo_kwargs_at(
            sim, dr, i, float(dr.mass_msun[i]), float(dr.sub_x[i]), float(dr.sub_y[i])
        )
        th = theta.copy()
        for k, v in kw.items():
            th[scene.names.index(f"sub.{k}")] = v
        with torch.no_grad():
            f1, v1 = (_np(t).reshape(n2) for t in render(scene, torch.as_tensor(th, dtype=DTYPE)))
        # velocity data inside both noiseless masks (as lensml.analysis.signal)
        m = (mask0 & (f1 > frac * float(f1.max())))[mask0]
        zf = (f1 - f0.reshape(n2)) / sig_f
        zz["flux"][b], bb["flux"][:, b] = zf @ zf, gf.T @ zf
        for fl in st.floors_kms:
            ds = dataset_key(fl)
            zv = np.where(m, (v1 - v0.reshape(n2))[mask0] / sig_v[fl][mask0], 0.0)
            zz[ds][b] = zz["flux"][b] + zv @ zv
            bb[ds][:, b] = bb["flux"][:, b] + gv[fl].T @ zv
    out = {ds: {} for ds in st.datasets}
    for ds in st.datasets:
        if ds.startswith("cube@"):
            out[ds] = _cube_delta_chi2(sims, draws, i, st, model, col_sets)
            continue
        # nuisance rows of the velocity: the smooth model's mask (the data region; m differs only at its edge)
        hh = hf if ds == "flux" else hf + gv[_floor(st, ds)].T @ gv[_floor(st, ds)]
        for name, idx in col_sets.items():
            pr = prior[np.ix_(idx, idx)] if len(model["prior_blocks"]) else None
            out[ds][name] = delta_chi2_many(zz[ds], bb[ds][idx], hh[np.ix_(idx, idx)], pr)
    return {ds: {k: np.sqrt(v) for k, v in d.items()} for ds, d in out.items()}


def _cube_delta_chi2(sims, draws, i, st, model, col_sets) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Delta chi^2 per bin of the cube data set (``lensml.inference.cube``); NaN for pixelated sets."""
    from lensml.inference.cube import channel_edges, cube_jacobian, render_cube, voxel_sigma

    scene, theta = model["scene"], model["theta"]
    edges = channel_edges(st.cube_channels, st.cube_v_range_kms)
    s_line = float(draws[0].sigma_line_kms[i])
    names = [lab for lab in model["labels"] if not lab.startswith("pix.")]
    cube0, jac = cube_jacobian(scene, theta, names, edges, s_line)
    cube0 = cube0.numpy()
    peak = float(model["f0"].max())
    nz = sims[0].noise
    sig = voxel_sigma(
        cube0, peak, float(draws[0].peak_snr[i]), nz.background_sigma_frac, edges[1] - edges[0], s_line
    )
    sig = np.maximum(sig, 1e-12 * peak).reshape(-1)
    g = jac.numpy().reshape(sig.size, -1) / sig[:, None]
    h = g.T @ g
    zz, bb = np.zeros(len(sims)), np.zeros((len(names), len(sims)))
    for b, (sim, dr) in enumerate(zip(sims, draws)):
        kw = physics.subhalo_kwargs_at(
            sim, dr, i, float(dr.mass_msun[i]), float(dr.sub_x[i]), float(dr.sub_y[i])
        )
        th = theta.copy()
        for k, v in kw.items():
            th[scene.names.index(f"sub.{k}")] = v
        with torch.no_grad():
            cube1 = render_cube(scene, torch.as_tensor(th, dtype=DTYPE), edges, s_line).numpy()
        z = ((cube1 - cube0).reshape(-1)) / sig
        zz[b], bb[:, b] = z @ z, g.T @ z
    out = {}
    for name, idx in col_sets.items():
        if any(model["labels"][j].startswith("pix.") for j in idx):
            out[name] = np.full(len(sims), np.nan)
            continue
        out[name] = delta_chi2_many(zz, bb[idx], h[np.ix_(idx, idx)])
    return out


def _floor(st: Settings, ds: str) -> float:
    return st.floors_kms[st.datasets.index(ds) - 1]


def settings_from(cfg: Mapping) -> Settings:
    """``Settings`` from the ``forecast`` config node (plain dict)."""
    pix = cfg.get("pixelated") or {}
    return Settings(
        marginalisations={k: list(v) for k, v in cfg["marginalise"].items()},
        floors_kms=[float(f) for f in cfg["sigma_v_floors_kms"]],
        pixel_n=int(pix.get("n_pix", 16)),
        pixel_extent=float(pix.get("extent", 0.6)),
        regularisation=str(pix.get("regularisation", "curvature")),
        lambda_scale=float(pix.get("lambda_scale", 1.0)),
        source_mode=str(cfg.get("source_mode", "grid")),
        split=str(cfg.get("split", "test")),
        cube_channels=int((cfg.get("cube") or {}).get("n_channels", 0)),
        cube_v_range_kms=float((cfg.get("cube") or {}).get("v_range_kms", 400.0)),
    )

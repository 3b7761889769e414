"""The lens modeller's model of one observed sample: parameters -> whitened residuals and their Jacobian.

What the fitter assumes (the model family, not the sample's truth):

- lens: the configured macro profile (``lens.model``, SIE / EPL) + external shear + the configured lens
  multipoles (``lens.multipoles.orders``; their amplitudes are fitted), all parameters free;
- source: a bulgeless, clumpless analytic disk (``renderer.DISK_FREE`` + ``src.amplitude``; the group
  ``bulge`` adds the Sersic bulge), evaluated at the traced ray positions (the renderer's ``analytic`` source
  mode; production samples the disk from a 96^2 grid, which differs from it far below the noise). Flux-only
  data do not constrain the velocity parameters: they are held fixed there;
- subhalo (smooth + subhalo fits): the configured profile (``subhalo.profile``) with free parameters
  ``(log10 M200 / M_sun, x, y arcsec)``; its concentration and truncation follow the configured model with
  the fitted host theta_E and the subhalo in the lens plane (``physics.subhalo_kwargs_model``: the drawn
  line-of-sight depth is not used), tabulated over log10 M at the start position (cubic spline in log).

Noise (the likelihood): Gaussian, residual ``(model - data) / sigma`` with the simulator's *reported* error
maps ``flux_sigma`` and ``sigma_v_kms`` (computed from the observed flux only), flux in all N^2 pixels,
velocity in the observed ``mask`` (data set ``flux_velocity``).

Jacobian: forward-mode autograd through the whole renderer (``renderer.jacobian``, ``torch.func.jacfwd``);
the log10 M column by the chain rule through the spline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import CubicSpline

from lensml.errors import ConfigError
from lensml.inference import physics
from lensml.inference.profiles import PROFILE_PARAMS, epl_terms
from lensml.inference.renderer import DTYPE, Scene, build_scene, jacobian, nuisance_names, render

#: the fitter's data sets: flux only, flux + velocity (moment-1 map inside the observed mask)
DATASETS: tuple[str, ...] = ("flux", "flux_velocity")
#: velocity-only source parameters (fixed when only the flux is fitted)
VELOCITY_PARAMS: tuple[str, ...] = ("src.v_max_kms", "src.r_turn_arcsec", "src.v_sys_kms")
#: the subhalo's fitted parameters (appended after the smooth ones)
SUB_FREE: tuple[str, ...] = ("sub.log10_mass", "sub.center_x", "sub.center_y")
#: neutral values of parameters the start does not set (arcsec, deg, km/s)
NEUTRAL: dict[str, float] = {
    "macro.theta_E": 1.0,
    "macro.gamma": 2.0,
    "macro.e1": 0.01,  # not exactly round: d atan2(e2, e1) is 0 / 0 at e = 0
    "macro.e2": 0.01,
    "src.inclination_deg": 45.0,
    "src.scale_radius_arcsec": 0.17,
    "src.v_max_kms": 200.0,
    "src.r_turn_arcsec": 0.07,
    "src.sigma0_kms": 50.0,
    "src.bulge_r_eff_arcsec": 0.04,
    "src.bulge_sersic_n": 2.0,
    "src.amplitude": 1.0,
    "sub.Rs": 0.1,
    "sub.alpha_Rs": 1e-3,
    "sub.r_trunc": 0.3,
    "sub.theta_E": 1e-3,
}
#: bounds of fitted parameters by name (beyond ``refit.BOUNDS``-like physical limits); others are free
BOUNDS: dict[str, tuple[float, float]] = {
    "macro.theta_E": (0.3, 2.5),
    "macro.gamma": (1.2, 2.8),
    "macro.e1": (-0.6, 0.6),
    "macro.e2": (-0.6, 0.6),
    "macro.center_x": (-0.5, 0.5),
    "macro.center_y": (-0.5, 0.5),
    "shear.gamma1": (-0.3, 0.3),
    "shear.gamma2": (-0.3, 0.3),
    "src.center_x": (-1.0, 1.0),
    "src.center_y": (-1.0, 1.0),
    "src.inclination_deg": (0.0, 85.0),
    "src.scale_radius_arcsec": (0.01, 1.0),
    "src.v_max_kms": (0.0, 1000.0),
    "src.r_turn_arcsec": (0.003, 1.0),
    "src.amplitude": (0.0, np.inf),
    "src.bulge_amp": (0.0, np.inf),
    "src.bulge_r_eff_arcsec": (0.005, 0.5),
    "src.bulge_sersic_n": (0.5, 8.0),
    "sub.log10_mass": (6.5, 12.0),
    "sub.center_x": (-3.0, 3.0),
    "sub.center_y": (-3.0, 3.0),
}
#: log10 M200 nodes of the subhalo kwargs table
LOG10_MASS_NODES = np.arange(6.5, 12.01, 0.25)


def bounds(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds of parameters ``names`` (``BOUNDS``; multipole amplitudes within +-0.1")."""
    lo, hi = [], []
    for n in names:
        a, b = BOUNDS.get(n, (-0.1, 0.1) if n.startswith("mpole") else (-np.inf, np.inf))
        lo.append(a)
        hi.append(b)
    return np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)


def inside(t: np.ndarray, names: Sequence[str], frac: float = 1e-6) -> np.ndarray:
    """``t`` clipped strictly inside the bounds (a trust-region start must be interior)."""
    lo, hi = bounds(names)
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    return np.clip(t, lo + frac * span, hi - frac * span)


@dataclass
class Observed:
    """One observed sample as the fitter sees it: data, reported sigmas, velocity pixels (N, N)."""

    flux: np.ndarray
    velocity: np.ndarray
    sigma_f: np.ndarray
    sigma_v: np.ndarray
    vmask: np.ndarray
    use_velocity: bool

    @classmethod
    def from_sample(cls, sample: dict[str, np.ndarray], k: int, dataset: str) -> Observed:
        """Sample ``k`` of a ``sample_batch`` dict for data set ``dataset`` (``DATASETS``)."""
        if dataset not in DATASETS:
            raise ConfigError(f"fit.datasets: unknown data set {dataset!r}; use {list(DATASETS)}.")
        f = np.asarray(sample["flux"][k], dtype=np.float64)
        peak = max(float(np.quantile(f, 0.999)), 1e-30)
        return cls(
            flux=f,
            velocity=np.asarray(sample["velocity"][k], dtype=np.float64),
            sigma_f=np.maximum(np.asarray(sample["flux_sigma"][k], dtype=np.float64), 1e-9 * peak),
            sigma_v=np.maximum(np.asarray(sample["sigma_v_kms"][k], dtype=np.float64), 1e-3),
            vmask=np.asarray(sample["mask"][k], dtype=bool),
            use_velocity=dataset == "flux_velocity",
        )

    @property
    def n_data(self) -> int:
        return int(self.flux.size + (self.vmask.sum() if self.use_velocity else 0))


def fit_scene(
    sim: physics.LensSimulator, draws: physics.DrawBatch, i: int, split: str = "test"
) -> tuple[Scene, np.ndarray]:
    """The fitter's ``Scene`` of sample ``i`` (rays, PSF, model family: analytic disk without clumps) and
    the sample's true parameter vector on its names (clumps dropped: for tests and the oracle start only)."""
    scene, theta = build_scene(sim, draws, i, split, "analytic")
    if scene.source_kind != "disk":
        raise ConfigError(
            "the fitter models analytic disk sources; set source=analytic (MaNGA templates need a pixelated "
            "source, not built yet)."
        )
    keep = [j for j, n in enumerate(scene.names) if n.count(".") < 2]  # clumps: src.<param>.<k>
    n_terms = epl_terms(0.45, 0.0) if scene.macro_model == "EPL" else 1  # covers |e| <= 0.45, no truth
    scene = dataclasses.replace(scene, n_clumps=0, names=[scene.names[j] for j in keep], n_epl_terms=n_terms)
    return scene, theta[keep]


def neutral_theta(scene: Scene) -> np.ndarray:
    """A parameter vector that uses no truth: ``NEUTRAL`` values, 0 elsewhere (no bulge, no multipoles)."""
    return np.array([NEUTRAL.get(n, 0.0) for n in scene.names], dtype=np.float64)


def smooth_free(scene: Scene, use_velocity: bool, groups: Sequence[str] = ("macro", "source")) -> list[str]:
    """The fitted smooth parameters: ``groups`` (``renderer.nuisance_names``), less velocity-only ones for
    flux-only data."""
    names = nuisance_names(scene, groups)
    return [n for n in names if use_velocity or n not in VELOCITY_PARAMS]


class SubhaloTable:
    """Subhalo kwargs vs log10 M200 at one position (cubic spline of log kwargs; arcsec)."""

    def __init__(
        self,
        sim: physics.LensSimulator,
        x: float,
        y: float,
        host_theta_e: float,
        lens_center: tuple[float, float],
    ) -> None:
        self.profile = sim.subhalo.profile
        self.shape = [p for p in PROFILE_PARAMS[self.profile] if p not in ("center_x", "center_y")]
        kw = physics.subhalo_kwargs_model(sim, 10.0**LOG10_MASS_NODES, x, y, host_theta_e, lens_center)
        self.splines = {
            p: CubicSpline(LOG10_MASS_NODES, np.log(np.maximum(kw[p], 1e-300))) for p in self.shape
        }

    def kwargs(self, log10_mass: float) -> tuple[dict[str, float], dict[str, float]]:
        """(kwargs, d kwargs / d log10 M) of the shape parameters."""
        val = {p: float(np.exp(s(log10_mass))) for p, s in self.splines.items()}
        der = {p: val[p] * float(s(log10_mass, 1)) for p, s in self.splines.items()}
        return val, der


class Problem:
    """Residuals and Jacobian of the parameters ``free`` (+ ``SUB_FREE`` when ``table`` is given)."""

    def __init__(
        self,
        scene: Scene,
        obs: Observed,
        base: np.ndarray,
        free: Sequence[str],
        table: SubhaloTable | None = None,
    ) -> None:
        self.scene, self.obs, self.base = scene, obs, np.asarray(base, dtype=np.float64)
        self.free = list(free)
        self.table = table
        self.idx = scene.index(self.free)
        self.names = self.free + (list(SUB_FREE) if table is not None else [])

    def theta(self, t: np.ndarray) -> np.ndarray:
        """The full scene parameter vector of fitted values ``t``."""
        th = self.base.copy()
        n = len(self.free)
        th[self.idx] = t[:n]
        if self.table is not None:
            kw, _ = self.table.kwargs(float(t[n]))
            for p, v in kw.items():
                th[self.scene.names.index(f"sub.{p}")] = v
            th[self.scene.names.index("sub.center_x")] = t[n + 1]
            th[self.scene.names.index("sub.center_y")] = t[n + 2]
        return th

    def whiten(self, f: np.ndarray, v: np.ndarray) -> np.ndarray:
        o = self.obs
        parts = [((f - o.flux) / o.sigma_f).ravel()]
        if o.use_velocity:
            parts.append(((v - o.velocity) / o.sigma_v)[o.vmask])
        return np.concatenate(parts)

    def resid(self, t: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            th = torch.as_tensor(self.theta(t), dtype=DTYPE)
            f, v = (a.numpy() for a in render(self.scene, th, self.table is not None))
        return self.whiten(f, v)

    def chi2(self, t: np.ndarray) -> float:
        r = self.resid(t)
        return float(r @ r)

    def jac(self, t: np.ndarray) -> np.ndarray:
        """d resid / d t (n_data, len(names)) by ``jacfwd``; log10 M through the spline (chain rule)."""
        cols = list(self.free)
        if self.table is not None:
            cols += [f"sub.{p}" for p in self.table.shape] + ["sub.center_x", "sub.center_y"]
        _, j = jacobian(self.scene, self.theta(t), cols, with_subhalo=self.table is not None)
        j = j.numpy()
        if self.table is not None:
            n = len(self.free)
            _, der = self.table.kwargs(float(t[n]))
            k = len(self.table.shape)
            dm = sum(j[..., n + a] * der[p] for a, p in enumerate(self.table.shape))
            j = np.concatenate([j[..., :n], dm[..., None], j[..., n + k :]], axis=-1)
        o = self.obs
        rows = [(j[0] / o.sigma_f[..., None]).reshape(-1, j.shape[-1])]
        if o.use_velocity:
            rows.append((j[1] / o.sigma_v[..., None])[o.vmask])
        return np.vstack(rows)

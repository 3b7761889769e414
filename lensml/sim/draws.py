"""Parameter draws of the simulator: every random quantity of a sample from its named prior.

Sample ``i`` of ``(seed, split)`` is a pure function of them: its uniforms come from Philox4x32-10 keyed by
``seed``, one stream per split and parameter group (``stream_tag``), one uniform per named quantity (the
``*_SLOTS`` tables), pushed through its prior's inverse CDF (``lensml.numerics.priors.quantile``). Changing
one prior leaves the other draws of a sample unchanged. ``ParameterDraws`` is the drawing half of
``lensml.sim.simulator.LensSimulator``; ``DrawBatch`` holds what it draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lensml.errors import ConfigError
from lensml.sim.lens_multipoles import draw_multipoles, multipole_kwargs
from lensml.sim.profiles import PROFILES

SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}
#: Macro-lens priors (a macro profile's own, e.g. EPL's ``gamma``, only for it; ``q``/``phi_deg`` replace
#: ``e1``/``e2`` when set).
LENS_KEYS: tuple[str, ...] = ("theta_E", "gamma", "e1", "e2", "gamma1", "gamma2", "center_x", "center_y")
#: Uniform slots of the lens stream.
LENS_SLOTS: dict[str, int] = {name: i for i, name in enumerate((*LENS_KEYS, "q", "phi_deg"))}
#: Uniform slots of the subhalo stream; on-arc placement adds n radii, then n angles; the line-of-sight
#: depth comes after them (``subhalo_depth_slot``), so that adding it left the other draws unchanged.
SUBHALO_SLOTS: dict[str, int] = {"present": 0, "mass": 1, "radius": 2, "angle": 3, "pick": 4}


def macro_own_params(model: str) -> tuple[str, ...]:
    """The macro profile's own parameters beyond the elliptical ones (EPL: gamma); slots: ``LENS_SLOTS``."""
    shared = ("theta_E", "e1", "e2", "center_x", "center_y")
    return tuple(k for k in PROFILES[model].params if k not in shared)


def subhalo_depth_slot(n_candidates: int) -> int:
    """Slot of the subhalo's line-of-sight depth uniform: after the 2 n on-arc candidates (n = 0 if off)."""
    return len(SUBHALO_SLOTS) + 2 * n_candidates

#: Random streams of a sample (``stream_tag``).
STREAMS: dict[str, int] = {
    "lens": 0, "source": 1, "subhalo": 2, "noise": 3, "noise_params": 4, "multipole": 5
}  # fmt: skip
#: Uniform slots of the noise-parameter stream (the pixel noise itself comes from the "noise" stream's seed).
NOISE_SLOTS: dict[str, int] = {"peak_snr": 0}
#: Intrinsic line dispersion (km/s) given to MaNGA templates unless ``source.template_sigma0_kms`` is set:
#: ionised-gas dispersions of z ~ 1-2 star-forming disks, ~45 km/s (Wisnioski et al. 2015; Uebler et al.
#: 2019).
TEMPLATE_SIGMA0_KMS = 45.0
def stream_tag(split: str, stream: str) -> int:
    """The Philox counter tag of ``stream`` of ``split`` (``lensml.numerics.philox.uniforms``)."""
    if split not in SPLIT_CODES:
        raise ConfigError(f"split={split!r} is unknown; use one of {list(SPLIT_CODES)}.")
    return 16 * SPLIT_CODES[split] + STREAMS[stream]




@dataclass
class _Draw:
    """One sample's random parameters (a view of one row of a ``DrawBatch``; editable, e.g. ``present``)."""

    lens: dict[str, float]
    source: Any  # SourceDraw
    present: bool
    mass_msun: float
    sub_x: float
    sub_y: float
    sub_z_kpc: float = 0.0  # line-of-sight offset from the lens centre (physical kpc)


@dataclass
class DrawBatch:
    """The random parameters of a batch as arrays (B,): lens (lenstronomy names), source (``SourceBatch``),
    subhalo presence, M200 mass (M_sun) and position (arcsec), and each sample's 64-bit noise seed."""

    lens: dict[str, np.ndarray]
    source: Any  # SourceBatch
    present: np.ndarray
    mass_msun: np.ndarray
    sub_x: np.ndarray
    sub_y: np.ndarray
    noise_key: np.ndarray
    peak_snr: np.ndarray | None = None  # (B,) drawn peak S/N (inf: no Poisson noise)
    sigma_line_kms: np.ndarray | None = None  # (B,) observed line dispersion, km/s
    sub_z_kpc: np.ndarray | None = None  # (B,) subhalo line-of-sight offset from the lens centre, kpc

    def __len__(self) -> int:
        return int(self.present.shape[0])

    def take(self, idx: np.ndarray | slice) -> DrawBatch:
        """The samples at positions ``idx``."""
        return DrawBatch(
            {k: v[idx] for k, v in self.lens.items()},
            self.source.take(idx),
            self.present[idx],
            self.mass_msun[idx],
            self.sub_x[idx],
            self.sub_y[idx],
            self.noise_key[idx],
            peak_snr=None if self.peak_snr is None else self.peak_snr[idx],
            sigma_line_kms=None if self.sigma_line_kms is None else self.sigma_line_kms[idx],
            sub_z_kpc=None if self.sub_z_kpc is None else self.sub_z_kpc[idx],
        )

    def one(self, i: int) -> _Draw:
        """Sample ``i`` as a ``_Draw``."""
        lens = {k: float(v[i]) for k, v in self.lens.items()}
        return _Draw(
            lens,
            self.source.one(i),
            bool(self.present[i]),
            float(self.mass_msun[i]),
            float(self.sub_x[i]),
            float(self.sub_y[i]),
            0.0 if self.sub_z_kpc is None else float(self.sub_z_kpc[i]),
        )

    @classmethod
    def from_draws(cls, draws: Sequence[_Draw]) -> DrawBatch:
        """The batch of single draws (e.g. edited ones); noise seeds 0 (only ``sample_batch`` uses them)."""
        from lensml.sources.source_batch import SourceBatch

        return cls(
            {k: np.array([d.lens[k] for d in draws], dtype=float) for k in draws[0].lens},
            SourceBatch.from_draws([d.source for d in draws]),
            np.array([d.present for d in draws], dtype=bool),
            np.array([d.mass_msun for d in draws], dtype=float),
            np.array([d.sub_x for d in draws], dtype=float),
            np.array([d.sub_y for d in draws], dtype=float),
            np.zeros(len(draws), np.uint64),
            sub_z_kpc=np.array([d.sub_z_kpc for d in draws], dtype=float),
        )


def _as_batch(draws: DrawBatch | Sequence[_Draw]) -> DrawBatch:
    return draws if isinstance(draws, DrawBatch) else DrawBatch.from_draws(draws)


class ParameterDraws:
    """The drawing methods of the simulator (mixed into ``LensSimulator``, which sets the settings they read:
    ``lens_cfg``, ``macro_model``, ``subhalo``, ``sources``, ``noise``, ``instrument``, redshifts)."""

    def draw_batch(self, seed: int, split: str, indices: Sequence[int] | np.ndarray) -> DrawBatch:
        """All random parameters of samples ``indices`` of ``split``, vectorised (module docstring)."""
        from lensml.numerics.philox import uniforms, words64
        from lensml.numerics.priors import quantile

        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        c, slot = self.lens_cfg, LENS_SLOTS
        u = uniforms(seed, stream_tag(split, "lens"), idx, len(LENS_SLOTS))
        lens = {"theta_E": quantile(c["theta_E"], u[:, slot["theta_E"]])}
        for name in macro_own_params(self.macro_model):  # e.g. EPL's gamma
            lens[name] = quantile(c[name], u[:, slot[name]])
        if c.get("q") is not None:
            from lensml.sim.macro_lens import q_phi_to_ellipticity

            q = quantile(c["q"], u[:, slot["q"]])
            phi = np.radians(quantile(c["phi_deg"], u[:, slot["phi_deg"]]))
            lens["e1"], lens["e2"] = (np.asarray(e, dtype=float) for e in q_phi_to_ellipticity(q, phi))
        else:
            lens["e1"] = quantile(c["e1"], u[:, slot["e1"]])
            lens["e2"] = quantile(c["e2"], u[:, slot["e2"]])
        for name in ("gamma1", "gamma2", "center_x", "center_y"):
            lens[name] = quantile(c[name], u[:, slot[name]])
        if self.multipoles.orders:  # own stream: the same prior whatever the label (lens_multipoles)
            u = uniforms(seed, stream_tag(split, "multipole"), idx, self.multipoles.n_slots)
            lens.update(draw_multipoles(self.multipoles, u, lens))
        u_src = uniforms(seed, stream_tag(split, "source"), idx, self.sources.n_slots)
        source = self.sources.draw_batch(split, u_src, lens["center_x"], lens["center_y"])

        s, ss = self.subhalo, SUBHALO_SLOTS
        n_cand = s.n_candidates if s.on_arc else 0
        u = uniforms(seed, stream_tag(split, "subhalo"), idx, subhalo_depth_slot(n_cand) + 1)
        present = u[:, ss["present"]] < s.p_present
        lo, hi = math.log10(s.mass_low_msun), math.log10(s.mass_high_msun)
        mass = 10.0 ** (lo + (hi - lo) * u[:, ss["mass"]])
        if s.on_arc:  # candidates in the band, one picked with probability ~ the arc's flux there
            radius = lens["theta_E"][:, None] + s.band_arcsec * (2.0 * u[:, 5 : 5 + n_cand] - 1.0)
            angle = 2.0 * math.pi * u[:, 5 + n_cand : 5 + 2 * n_cand]
        else:
            radius = (lens["theta_E"] + s.band_arcsec * (2.0 * u[:, ss["radius"]] - 1.0))[:, None]
            angle = 2.0 * math.pi * u[:, ss["angle"], None]
        sx = lens["center_x"][:, None] + radius * np.cos(angle)
        sy = lens["center_y"][:, None] + radius * np.sin(angle)
        pick = np.zeros(idx.size, dtype=int)
        if s.on_arc:
            for b in range(idx.size):
                one = {k: float(v[b]) for k, v in lens.items()}
                weight = np.clip(self._macro_source_flux(one, source.one(b), split, sx[b], sy[b]), 0.0, None)
                if weight.sum() > 0:
                    k = int(np.searchsorted(np.cumsum(weight), u[b, ss["pick"]] * weight.sum(), side="right"))
                    pick[b] = min(k, n_cand - 1)
        rows = np.arange(idx.size)
        sx, sy = sx[rows, pick], sy[rows, pick]
        sub_z = self._draw_depth(u[:, subhalo_depth_slot(n_cand)], lens, sx, sy)
        peak_snr, sigma_line = self._noise_params(seed, split, idx, source)
        return DrawBatch(
            lens,
            source,
            present,
            mass,
            sx,
            sy,
            words64(seed, stream_tag(split, "noise"), idx),
            peak_snr=peak_snr,
            sigma_line_kms=sigma_line,
            sub_z_kpc=sub_z,
        )

    def _r_proj_kpc(self, lens: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Projected distance (physical kpc) of image positions (x, y) from the lens centre."""
        from lensml.sim.cosmology import lens_distances
        from lensml.sim.subhalo_tidal import kpc_per_arcsec

        dist = lens_distances(self.z_lens, self.z_source, self.cosmology)
        return np.hypot(x - lens["center_x"], y - lens["center_y"]) * kpc_per_arcsec(dist)

    def _draw_depth(
        self, u: np.ndarray, lens: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray
    ) -> np.ndarray:
        """Line-of-sight offsets z (kpc) of uniforms ``u`` (``subhalo.depth``, see ``subhalo_tidal``)."""
        from lensml.sim.cosmology import lens_distances
        from lensml.sim.subhalo_tidal import depth_kpc, host_r200_kpc, host_sigma_v_kms

        dist = lens_distances(self.z_lens, self.z_source, self.cosmology)
        r200 = host_r200_kpc(host_sigma_v_kms(lens["theta_E"], dist), dist)
        s = self.subhalo
        return depth_kpc(u, self._r_proj_kpc(lens, x, y), s.depth_r_max_r200 * r200, s.depth_prior)

    def _subhalo_args(self, draws: DrawBatch) -> dict[str, Any]:
        """Subhalo model arguments of ``subhalo_kwargs`` / ``subhalo_masses`` for drawn samples."""
        z = np.zeros(len(draws)) if draws.sub_z_kpc is None else draws.sub_z_kpc
        r3d = np.hypot(self._r_proj_kpc(draws.lens, draws.sub_x, draws.sub_y), z)
        return self._subhalo_model(r3d, draws.lens["theta_E"])

    def _subhalo_model(self, r3d_kpc: np.ndarray, host_theta_e: np.ndarray) -> dict[str, Any]:
        s = self.subhalo
        return dict(
            cosmology=self.cosmology,
            concentration=s.concentration,
            tau_trunc=s.tau_trunc,
            truncation=s.truncation,
            r3d_kpc=np.maximum(r3d_kpc, 1e-6),
            host_theta_e=host_theta_e,
        )

    def _noise_params(
        self, seed: int, split: str, idx: np.ndarray, source: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """(B,) drawn peak S/N (inf if ``noise.peak_snr`` is null) and observed line dispersion (km/s)."""
        from lensml.numerics.philox import uniforms
        from lensml.numerics.priors import quantile
        from lensml.sim.velocity_noise import line_sigma_kms

        if self.noise.peak_snr is None:
            peak_snr = np.full(idx.size, np.inf)
        else:
            u = uniforms(seed, stream_tag(split, "noise_params"), idx, len(NOISE_SLOTS))
            peak_snr = np.asarray(quantile(self.noise.peak_snr, u[:, NOISE_SLOTS["peak_snr"]]), float)
        sigma0 = np.where(
            source.kind == "template", self.template_sigma0_kms, np.asarray(source.disk["sigma0_kms"], float)
        )
        return peak_snr.reshape(idx.size), line_sigma_kms(sigma0, self.instrument.resolving_power)

    def draw(self, seed: int, split: str, index: int) -> tuple[_Draw, np.uint64]:
        """All random parameters of one sample, and its 64-bit noise seed (for ``add_noise``)."""
        batch = self.draw_batch(seed, split, [index])
        return batch.one(0), batch.noise_key[0]

    def _macro_source_flux(
        self, lens: Mapping[str, float], source: Any, split: str, x: np.ndarray, y: np.ndarray
    ) -> np.ndarray:
        """Source flux seen at image positions (x, y) through the macro lens alone (on-arc placement)."""
        from lensml.sim.backends.lenstronomy_backend import ray_shoot_numpy

        bx, by = ray_shoot_numpy(x, y, self.lens_model_list[:2], self._macro_kwargs_one(lens))
        return self.sources.flux_at(source, split, bx, by)

    def _macro_kwargs_one(self, lens: Mapping[str, float]) -> list[dict[str, float]]:
        keys = PROFILES[self.macro_model].params
        return [
            {k: lens[k] for k in keys if k in lens},
            {"gamma1": lens["gamma1"], "gamma2": lens["gamma2"]},
        ]

    def _subhalo_kwargs(
        self, mass: np.ndarray, r3d_kpc: np.ndarray, x: np.ndarray, y: np.ndarray, host_theta_e: np.ndarray
    ) -> dict[str, Any]:
        from lensml.sim.subhalo import subhalo_kwargs

        model = self._subhalo_model(r3d_kpc, host_theta_e)
        return subhalo_kwargs(
            self.subhalo.profile, mass, self.z_lens, self.z_source, center_x=x, center_y=y, **model
        )

    def lens_kwargs(self, draws: DrawBatch | Sequence[_Draw]) -> list[dict[str, np.ndarray]]:
        """Batch-first lenstronomy kwargs [macro, SHEAR, subhalo, multipoles...] of drawn samples (mass 0 when
        absent), in the order of ``lens_model_list``."""
        draws = _as_batch(draws)
        macro = {k: draws.lens[k] for k in PROFILES[self.macro_model].params if k in draws.lens}
        shear = {k: draws.lens[k] for k in ("gamma1", "gamma2")}
        mass = np.where(draws.present, draws.mass_msun, 0.0)
        from lensml.sim.subhalo import subhalo_kwargs

        sub = subhalo_kwargs(
            self.subhalo.profile,
            mass,
            self.z_lens,
            self.z_source,
            center_x=draws.sub_x,
            center_y=draws.sub_y,
            **self._subhalo_args(draws),
        )
        sub = {k: np.asarray(v, dtype=float) for k, v in sub.items()}
        return [macro, shear, sub, *multipole_kwargs(self.multipoles, draws.lens)]


"""The simulator seam: composed config -> batches of rendered two-channel lensed samples.

THIS IS THE CONTRACT between the simulator (Layers 2-3) and the ML layer (Layer 4). Keep it stable.

- ``build_simulator(cfg)`` takes the whole composed Hydra config and reads only the groups
  ``cfg.source``, ``cfg.lens``, ``cfg.subhalo``, ``cfg.noise``, ``cfg.instrument`` and ``cfg.sim``.
  It validates them (``ConfigError`` naming the key, e.g. ``subhalo.mass_bin``) and returns a ``Simulator``.
- ``Simulator.sample_batch(seed, split, indices)`` renders the samples ``indices`` of ``split``.
  Sample ``i`` is a pure function of ``(seed, split, i)``, whatever the batch it is rendered in, the
  process or the worker: its random numbers come from the counter-based generator Philox4x32-10 keyed by
  ``seed``, one stream per split and parameter group (``stream_tag``), one uniform per named quantity.

Returned dict (B = len(indices), N = cfg.instrument.n_pix):

=================  =============  ==========================================================================
key                dtype, shape   meaning
=================  =============  ==========================================================================
``flux``           float32 B,N,N  observed surface brightness, arbitrary units, noise included (unnormalised)
``velocity``       float32 B,N,N  observed line-of-sight velocity in km/s relative to systemic (flux-weighted
                                  mean plus noise); 0 outside mask
``mask``           bool    B,N,N  validity mask: flux > cfg.noise.mask_frac_of_peak * peak, on the noisy
                                  observed flux (``noise.mask_from=observed``, default) or the noiseless flux
``label``          int64   B      1 = subhalo present, 0 = none (drawn with P = cfg.subhalo.p_present)
``mass_msun``      float64 B      subhalo mass in M_sun (definition in ``lensml.sim.subhalo``); 0.0 if none
``sub_x_arcsec``   float64 B      subhalo position in the image plane (arcsec); NaN if none
``sub_y_arcsec``   float64 B      idem
``source_id``      str     B      ``"disk"`` for analytic sources, the plateifu for MaNGA templates
``sigma_v_kms``    float32 B,N,N  velocity error a pipeline would report (km/s), from observed quantities
                                  only (``instrument.reported_sigmas``); defined in every pixel
``flux_sigma``     float32 B,N,N  flux noise sigma (flux units), from the observed flux and its peak
``peak_snr``       float64 B      the sample's drawn peak S/N (prior ``noise.peak_snr``); inf: no Poisson
``m_trunc_msun``   float64 B      subhalo 3D mass inside its truncation radius (M_sun; NFW, SIS: M200); 0 if
                                  none
``m_proj_*``       float64 B      ``m_proj_1kpc_msun``, ``m_proj_0p1arcsec_msun``: subhalo projected mass in a
                                  cylinder of radius 1 kpc, 0.1 arcsec (M_sun); 0 if none (all subhalo masses:
                                  ``lensml.sim.subhalo.subhalo_masses``, docs/lens_physics.md)
``tau_trunc``      float64 B      r_trunc / r_s of the TNFW subhalo; NaN if none or not truncated (NFW, SIS)
``c200``           float64 B      concentration r200 / r_s of the NFW/TNFW subhalo; NaN if none or SIS
``cube``           float32 4-D    only with ``instrument.n_velocity_channels`` = V > 0: the IFU cube (B, V, N,
                                  N), line flux per velocity channel with voxel noise (``lensml.sim.cube``;
                                  drawn apart from the maps' noise, which it leaves unchanged)
=================  =============  ==========================================================================

Config keys, conventions and the lower-level rendering API: ``docs/simulator.md``. Per-sample uniforms:
lens (``LENS_SLOTS``), source (``lensml.sources.source_priors.COMMON_SLOTS``, then ``DISK_SLOTS`` or
``TEMPLATE_SLOTS``), subhalo (``SUBHALO_SLOTS``, then the on-arc candidates, then the line-of-sight depth,
``subhalo_depth_slot``), and a 64-bit noise seed for
the noise of its pixels (``lensml.sim.noise_draws``), and the noise parameters (``NOISE_SLOTS``: the peak
S/N); changing one prior leaves the other draws of a sample unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lensml.errors import ConfigError
from lensml.sim.draws import (  # noqa: F401 - the seam's public names, importable from here
    LENS_KEYS,
    LENS_SLOTS,
    NOISE_SLOTS,
    SPLIT_CODES,
    STREAMS,
    SUBHALO_SLOTS,
    TEMPLATE_SIGMA0_KMS,
    DrawBatch,
    ParameterDraws,
    _as_batch,
    _Draw,
    stream_tag,
    subhalo_depth_slot,
)
from lensml.sim.lens_multipoles import multipole_settings
from lensml.sim.settings import (  # noqa: F401
    PHYSICS_GROUPS,
    SubhaloSettings,
    _check_lens,
    _instrument,
    _noise,
    _number,
    _physics_dict,
    _subhalo_settings,
)

log = logging.getLogger(__name__)
#: Version of the per-sample draw scheme and rendering arithmetic: bump it when sample i of (seed, split)
#: changes, so that dataset caches made by an older version are refused (``lensml.data.cache``).
#: 2: Gaussian noise from a per-sample torch.Generator; source-grid coordinates in one pass (torch_grid).
#: 3: parameters and noise from Philox streams, one uniform per quantity (priors by their inverse CDF);
#: compiled CPU kernels (float32 rounding).
#: 4: velocity rendered wherever the flux is positive, masked only after the noise; velocity noise from the
#: line (width, S/N); peak S/N drawn per sample; sigma_v_kms / flux_sigma / peak_snr keys. Subhaloes: a
#: line-of-sight depth draw, Moline et al. (2017) concentrations and tidal truncation by default, and the
#: m_trunc_msun / m_proj_* / tau_trunc / c200 keys.
#: 5: hard negatives in both classes: lens multipoles m = 3, 4 (lens.multipoles, own Philox stream, a_m up to
#: 1 % of theta_E); source clumps with their own line-of-sight velocities (+-30-80 km/s), 0-6 of 0.01-0.04".
#: Also 5: the observed mask needs the observed flux above noise.mask_min_snr (3) times its noise sigma.
SAMPLES_VERSION = 5

#: Per-sample subhalo metadata beside M200 (``lensml.sim.subhalo.subhalo_masses``; float64 (B,)).
SUBHALO_METADATA_KEYS: tuple[str, ...] = (
    "m_trunc_msun",
    "m_proj_1kpc_msun",
    "m_proj_0p1arcsec_msun",
    "tau_trunc",
    "c200",
)

SAMPLE_KEYS: tuple[str, ...] = (
    "flux",
    "velocity",
    "mask",
    "label",
    "mass_msun",
    "sub_x_arcsec",
    "sub_y_arcsec",
    "source_id",
    "sigma_v_kms",
    "flux_sigma",
    "peak_snr",
    *SUBHALO_METADATA_KEYS,
)


class Simulator:
    """Renders lensed flux + velocity samples. Built by ``build_simulator``; see the module docstring."""

    n_pix: int
    pixel_scale_arcsec: float

    def sample_batch(self, seed: int, split: str, indices: Sequence[int]) -> dict[str, np.ndarray]:
        raise NotImplementedError  # implemented by LensSimulator


def build_simulator(cfg) -> Simulator:  # noqa: ANN001 - DictConfig
    """Validate the physics groups of ``cfg`` and build the simulator (``lensml.sim.allocator`` once)."""
    from lensml.sim.allocator import keep_freed_memory

    sim = LensSimulator(_physics_dict(cfg))
    keep_freed_memory()
    return sim


class LensSimulator(ParameterDraws, Simulator):
    """The simulator built from validated physics groups (see ``build_simulator``): the composer of
    draw (``ParameterDraws``) -> lens -> render -> noise."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        from lensml.sim.render import BACKENDS
        from lensml.sources.source_priors import SourceSampler

        lens = cfg["lens"]
        _check_lens(lens)
        self.lens_cfg = lens
        self.macro_model = str(lens["model"])
        self.z_lens, self.z_source = float(lens["z_lens"]), float(lens["z_source"])
        self.cosmology = str(lens.get("cosmology", "Planck18"))
        self.subhalo = _subhalo_settings(cfg["subhalo"])
        self.instrument = _instrument(cfg["instrument"])
        self.noise = _noise(cfg["noise"])
        from lensml.sim.instrument import check_line_coverage

        check_line_coverage(self.instrument, self.z_source)
        self.template_sigma0_kms = _number(
            {"t": cfg["source"].get("template_sigma0_kms", TEMPLATE_SIGMA0_KMS)},
            "t",
            "source.template_sigma0_kms",
            0.0,
        )
        sim = cfg["sim"]
        self.backend = sim.get("backend", "torch")
        if self.backend not in BACKENDS:
            raise ConfigError(f"sim.backend={self.backend!r} is unknown; use one of {list(BACKENDS)}.")
        self.dtype = str(sim.get("dtype", "float32"))
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"sim.dtype={self.dtype!r} must be float32 or float64.")
        self.device = str(sim.get("device", "cpu"))
        self.chunk_size = (
            _number(sim, "chunk_size", "sim", 1, integer=True) if sim.get("chunk_size") else 0
        )
        self.cpu_kernels = sim.get("cpu_kernels", True)
        if not isinstance(self.cpu_kernels, bool):
            raise ConfigError(f"sim.cpu_kernels={self.cpu_kernels!r} must be true or false.")
        if self.instrument.n_velocity_channels and self.backend != "torch":
            raise ConfigError(
                f"instrument.n_velocity_channels={self.instrument.n_velocity_channels} needs "
                f"sim.backend=torch (sim.backend={self.backend!r} renders no IFU cube); or set "
                "instrument.n_velocity_channels=0."
            )
        self.sources = SourceSampler(cfg["source"], self.z_source, self.cosmology)
        self.n_pix = self.instrument.n_pix
        self.pixel_scale_arcsec = self.instrument.pixel_scale_arcsec
        self.multipoles = multipole_settings(lens.get("multipoles"))
        multipoles = ["MULTIPOLE"] * len(self.multipoles.orders)
        self.lens_model_list = [self.macro_model, "SHEAR", self.subhalo.profile, *multipoles]
        # a subhalo mass at the top of the prior must be convertible (fails here, not in a worker)
        self._subhalo_kwargs(
            np.array([self.subhalo.mass_high_msun, 0.0]), np.ones(2), np.zeros(2), np.zeros(2), np.ones(2)
        )

    # -- rendering ----------------------------------------------------------------------------------------
    def render_noiseless(self, draws: DrawBatch | Sequence[_Draw], split: str) -> dict[str, np.ndarray]:
        """Noiseless flux, velocity, mask (B, N, N) of drawn samples, with the configured backend.

        The batch is rendered in chunks of ``sim.chunk_size`` samples (cache-sized work; the values do not
        depend on the chunking).
        """
        draws = _as_batch(draws)
        out = self._empty(len(draws))
        step = self.chunk_size or len(draws)
        for start in range(0, len(draws), step):
            part = self._render_chunk(draws.take(slice(start, start + step)), split)
            for key in out:
                out[key][start : start + step] = part[key]
        return out

    def _render_chunk(self, draws: DrawBatch, split: str) -> dict[str, np.ndarray]:
        from lensml.sim.render import render_lensed

        out = self._empty(len(draws))
        # samples with a subhalo first: the torch backend then adds the subhalo terms in place (no copies)
        order = np.argsort(~draws.present, kind="stable")
        draws = draws.take(order)
        kwargs = self.lens_kwargs(draws)
        options: dict[str, Any] = {}
        array, dtype = "numpy", None
        if self.backend == "torch":
            import torch

            options = {"device": self.device, "dtype": self.dtype, "cpu_kernels": self.cpu_kernels}
            array, dtype = "torch", getattr(torch, self.dtype)
        groups = self.sources.grids(draws.source, split, array, dtype, self.device, self.cpu_kernels)
        for idx, grids in groups:
            sub_kwargs = [{k: v[idx] for k, v in kw.items()} for kw in kwargs]
            if "cube" in out:  # the IFU cube needs each sample's line dispersion
                options["sigma_line_kms"] = np.asarray(draws.sigma_line_kms)[idx]
            res = render_lensed(
                grids,
                self.lens_model_list,
                sub_kwargs,
                self.instrument,
                self.noise.mask_frac_of_peak,
                backend=self.backend,
                **options,
            )
            for key in out:
                out[key][order[idx]] = res[key]
        return out

    def _empty(self, b: int) -> dict[str, np.ndarray]:
        """Zeroed noiseless outputs of ``b`` samples (the cube too if ``instrument.n_velocity_channels``)."""
        n, nv = self.n_pix, self.instrument.n_velocity_channels
        out = {"flux": np.zeros((b, n, n), np.float32), "velocity": np.zeros((b, n, n), np.float32),
               "mask": np.zeros((b, n, n), bool)}
        if nv:
            out["cube"] = np.zeros((b, nv, n, n), np.float32)
        return out

    def sample_batch(self, seed: int, split: str, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Render samples ``indices`` of ``split`` (see the module docstring for the returned dict)."""
        from lensml.sim.instrument import add_noise, final_mask, reported_sigmas

        indices = [int(i) for i in indices]
        if not indices:
            raise ConfigError("sample_batch: indices is empty; ask for at least one sample.")
        draws = self.draw_batch(seed, split, indices)
        clean = self.render_noiseless(draws, split)
        flux, velocity = add_noise(
            clean["flux"],
            clean["velocity"],
            clean["mask"],
            self.noise,
            draws.noise_key,
            draws.sigma_line_kms,
            draws.peak_snr,
        )
        sigma_v, sigma_f = reported_sigmas(flux, self.noise, draws.sigma_line_kms, draws.peak_snr)
        present = draws.present
        mask = final_mask(flux, clean["mask"], self.noise, draws.peak_snr)
        cube = {}
        if "cube" in clean:
            from lensml.sim.cube_noise import add_cube_noise

            cube["cube"] = add_cube_noise(clean["cube"], clean["flux"], self.noise, self.instrument, draws)
        return {
            "flux": flux,
            "velocity": velocity,
            "mask": mask,
            "label": present.astype(np.int64),
            "mass_msun": np.where(present, draws.mass_msun, 0.0).astype(np.float64),
            "sub_x_arcsec": np.where(present, draws.sub_x, np.nan).astype(np.float64),
            "sub_y_arcsec": np.where(present, draws.sub_y, np.nan).astype(np.float64),
            "source_id": draws.source.source_id.astype(str),
            "sigma_v_kms": sigma_v,
            "flux_sigma": sigma_f,
            "peak_snr": draws.peak_snr.astype(np.float64),
            **self.subhalo_metadata(draws),
            **cube,
        }

    def subhalo_metadata(self, draws: DrawBatch) -> dict[str, np.ndarray]:
        """Masses, tau, c200 of drawn subhaloes (``lensml.sim.subhalo.subhalo_masses``; 0 / NaN if none)."""
        from lensml.sim.subhalo import subhalo_masses

        mass = np.where(draws.present, draws.mass_msun, 0.0)
        return subhalo_masses(
            self.subhalo.profile, mass, self.z_lens, self.z_source, **self._subhalo_args(draws)
        )

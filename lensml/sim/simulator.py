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
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lensml.errors import ConfigError

log = logging.getLogger(__name__)

SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}
#: Version of the per-sample draw scheme and rendering arithmetic: bump it when sample i of (seed, split)
#: changes, so that dataset caches made by an older version are refused (``lensml.data.cache``).
#: 2: Gaussian noise from a per-sample torch.Generator; source-grid coordinates in one pass (torch_grid).
#: 3: parameters and noise from Philox streams, one uniform per quantity (priors by their inverse CDF);
#: compiled CPU kernels (float32 rounding).
#: 4: velocity rendered wherever the flux is positive, masked only after the noise; velocity noise from the
#: line (width, S/N); peak S/N drawn per sample; sigma_v_kms / flux_sigma / peak_snr keys. Subhaloes: a
#: line-of-sight depth draw, Moline et al. (2017) concentrations and tidal truncation by default, and the
#: m_trunc_msun / m_proj_* / tau_trunc / c200 keys.
SAMPLES_VERSION = 4

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

#: Macro-lens priors (``gamma`` only for EPL; ``q``/``phi_deg`` replace ``e1``/``e2`` when set).
LENS_KEYS: tuple[str, ...] = ("theta_E", "gamma", "e1", "e2", "gamma1", "gamma2", "center_x", "center_y")
#: Uniform slots of the lens stream.
LENS_SLOTS: dict[str, int] = {name: i for i, name in enumerate((*LENS_KEYS, "q", "phi_deg"))}
#: Uniform slots of the subhalo stream; on-arc placement adds n radii, then n angles; the line-of-sight
#: depth comes after them (``subhalo_depth_slot``), so that adding it left the other draws unchanged.
SUBHALO_SLOTS: dict[str, int] = {"present": 0, "mass": 1, "radius": 2, "angle": 3, "pick": 4}


def subhalo_depth_slot(n_candidates: int) -> int:
    """Slot of the subhalo's line-of-sight depth uniform: after the 2 n on-arc candidates (n = 0 if off)."""
    return len(SUBHALO_SLOTS) + 2 * n_candidates

#: Random streams of a sample (``stream_tag``).
STREAMS: dict[str, int] = {"lens": 0, "source": 1, "subhalo": 2, "noise": 3, "noise_params": 4}
#: Uniform slots of the noise-parameter stream (the pixel noise itself comes from the "noise" stream's seed).
NOISE_SLOTS: dict[str, int] = {"peak_snr": 0}
#: Intrinsic line dispersion (km/s) given to MaNGA templates unless ``source.template_sigma0_kms`` is set:
#: ionised-gas dispersions of z ~ 1-2 star-forming disks, ~45 km/s (Wisnioski et al. 2015; Uebler et al.
#: 2019).
TEMPLATE_SIGMA0_KMS = 45.0
PHYSICS_GROUPS: tuple[str, ...] = ("source", "lens", "subhalo", "noise", "instrument", "sim")


def stream_tag(split: str, stream: str) -> int:
    """The Philox counter tag of ``stream`` of ``split`` (``lensml.sim.philox.uniforms``)."""
    if split not in SPLIT_CODES:
        raise ConfigError(f"split={split!r} is unknown; use one of {list(SPLIT_CODES)}.")
    return 16 * SPLIT_CODES[split] + STREAMS[stream]


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


# ----------------------------------------------------------------------------------------------------------
# config -> validated settings
# ----------------------------------------------------------------------------------------------------------


def _physics_dict(cfg: Any) -> dict[str, Any]:
    """The physics groups of a DictConfig or mapping as plain dicts (their interpolations resolved)."""
    from omegaconf import DictConfig, OmegaConf

    out = {}
    for group in PHYSICS_GROUPS:
        node = cfg.get(group) if isinstance(cfg, Mapping | DictConfig) else None
        if isinstance(node, DictConfig):
            node = OmegaConf.to_container(node, resolve=True)
        if not isinstance(node, Mapping):
            raise ConfigError(
                f"config group {group!r} is missing; compose it ({group}=<name>) or add it."
            )
        out[group] = dict(node)
    return out


def _number(
    c: Mapping[str, Any],
    key: str,
    group: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
    allow_none: bool = False,
) -> Any:
    value = c.get(key)
    name = f"{group}.{key}"
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a finite number; set {name}=<number>.")
    if integer and int(value) != value:
        raise ConfigError(f"{name}={value!r} must be an integer.")
    if (low is not None and (value < low or (low_open and value <= low))) or (
        high is not None and value > high
    ):
        rng = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}]"
        raise ConfigError(f"{name}={value!r} is outside {rng}; change {name}.")
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class SubhaloSettings:
    profile: str
    p_present: float
    mass_low_msun: float
    mass_high_msun: float
    concentration: float | str
    tau_trunc: float
    band_arcsec: float
    on_arc: bool
    n_candidates: int
    truncation: str = "fixed"
    depth_prior: str = "uniform"
    depth_r_max_r200: float = 1.0


def _check_lens(c: Mapping[str, Any]) -> None:
    from lensml.sim.macro_lens import GAMMA_RANGE, MACRO_MODELS, Q_MIN
    from lensml.sim.priors import check_range, support, validate_prior

    if c.get("model") not in MACRO_MODELS:
        raise ConfigError(f"lens.model={c.get('model')!r} is unknown; use one of {list(MACRO_MODELS)}.")
    z_l = _number(c, "z_lens", "lens", 0.0, low_open=True)
    z_s = _number(c, "z_source", "lens")
    if not z_s > z_l:
        raise ConfigError(
            f"lens.z_source={z_s} must be larger than lens.z_lens={z_l}; put the source behind the lens."
        )
    from lensml.sim.cosmology import get_cosmology

    get_cosmology(str(c.get("cosmology", "Planck18")))
    check_range(
        c.get("theta_E"), "lens.theta_E", 0.0, None, low_open=True, what="the Einstein radius (arcsec)"
    )
    if c["model"] == "EPL":
        check_range(
            c.get("gamma"),
            "lens.gamma",
            GAMMA_RANGE[0],
            GAMMA_RANGE[1],
            True,
            True,
            what="the EPL slope",
        )
    if c.get("q") is not None:
        check_range(c["q"], "lens.q", Q_MIN, 1.0, what="the axis ratio q")
        validate_prior(c.get("phi_deg"), "lens.phi_deg")
    else:
        e_max = 0.0
        for name in ("e1", "e2"):
            lo, hi = support(_required_prior(c, name, "lens"))
            e_max = math.hypot(e_max, max(abs(lo), abs(hi)))
        if e_max > (1 - Q_MIN) / (1 + Q_MIN):
            raise ConfigError(
                f"lens.e1/lens.e2: the priors reach |e| = {e_max:.3g}, i.e. an axis ratio "
                f"q = (1-|e|)/(1+|e|) outside [{Q_MIN}, 1]; narrow lens.e1 / lens.e2 (or set lens.q)."
            )
    for name in ("gamma1", "gamma2", "center_x", "center_y"):
        _required_prior(c, name, "lens")


def _required_prior(c: Mapping[str, Any], name: str, group: str) -> Any:
    from lensml.sim.priors import validate_prior

    if c.get(name) is None:
        raise ConfigError(f"{group}.{name} is missing; add it to conf/{group}/<name>.yaml.")
    validate_prior(c[name], f"{group}.{name}")
    return c[name]


def _subhalo_settings(c: Mapping[str, Any]) -> SubhaloSettings:
    from lensml.sim.subhalo import SUBHALO_PROFILES

    profile = c.get("profile")
    if profile not in SUBHALO_PROFILES:
        raise ConfigError(
            f"subhalo.profile={profile!r} is unknown; use one of {list(SUBHALO_PROFILES)}."
        )
    p_present = _number(c, "p_present", "subhalo", 0.0, 1.0)
    if c.get("mass_bin") is not None:
        centre = _number(c, "mass_bin", "subhalo", 0.0, low_open=True)
        dex = _number(c, "mass_bin_dex", "subhalo", 0.0)
        low, high = centre * 10 ** (-dex / 2), centre * 10 ** (dex / 2)
    else:
        rng = c.get("mass_range_msun")
        if not isinstance(rng, Sequence) or len(rng) != 2:
            raise ConfigError(
                f"subhalo.mass_range_msun={rng!r} must be [low, high] in M_sun (or set "
                "subhalo.mass_bin)."
            )
        low, high = (_number({"v": v}, "v", "subhalo.mass_range_msun") for v in rng)
        if not 0 < low <= high:
            raise ConfigError(
                f"subhalo.mass_range_msun={list(rng)} must satisfy 0 < low <= high (M_sun)."
            )
    from lensml.sim.subhalo import CONCENTRATIONS
    from lensml.sim.subhalo_tidal import DEPTH_PRIORS, TRUNCATIONS

    conc = c.get("concentration", "duffy08")
    if isinstance(conc, str):
        if conc.lower() not in CONCENTRATIONS:
            raise ConfigError(
                f"subhalo.concentration={conc!r} is unknown; use one of {list(CONCENTRATIONS)} or a number."
            )
    else:
        conc = _number(c, "concentration", "subhalo", 0.0, low_open=True)
    tau = _number(c, "tau_trunc", "subhalo", 0.0, low_open=True)
    truncation = c.get("truncation", "fixed")
    if truncation not in TRUNCATIONS:
        raise ConfigError(
            f"subhalo.truncation={truncation!r} is unknown; use one of {list(TRUNCATIONS)}."
        )
    depth = c.get("depth") or {}
    if depth.get("prior", "uniform") not in DEPTH_PRIORS:
        raise ConfigError(
            f"subhalo.depth.prior={depth.get('prior')!r} is unknown; use one of {list(DEPTH_PRIORS)}."
        )
    r_max = _number(
        {"r_max_r200": depth.get("r_max_r200", 1.0)}, "r_max_r200", "subhalo.depth", 0.0, low_open=True
    )
    placement = c.get("placement") or {}
    band = _number(placement, "band_arcsec", "subhalo.placement", 0.0)
    n_cand = (
        _number(placement, "n_candidates", "subhalo.placement", 1, integer=True)
        if placement.get("n_candidates") is not None
        else 32
    )
    return SubhaloSettings(
        str(profile),
        p_present,
        low,
        high,
        conc,
        tau,
        band,
        bool(placement.get("on_arc")),
        n_cand,
        str(truncation),
        str(depth.get("prior", "uniform")),
        r_max,
    )


def _instrument(c: Mapping[str, Any]):  # noqa: ANN202
    from lensml.sim.instrument import Instrument, gaussian_psf_kernel, load_psf_kernel

    n_pix = _number(c, "n_pix", "instrument", 4, integer=True)
    scale = _number(c, "pixel_scale_arcsec", "instrument", 0.0, low_open=True)
    sup = _number(c, "supersample", "instrument", 1, integer=True)
    if c.get("psf_kernel_path"):
        kernel = load_psf_kernel(c["psf_kernel_path"])
    else:
        fwhm = _number(c, "psf_fwhm_arcsec", "instrument", 0.0, allow_none=True)
        kernel = gaussian_psf_kernel(fwhm, scale) if fwhm else None
    vgrid = _number(c, "velocity_grid", "instrument", 1, integer=True, allow_none=True)
    if vgrid is not None and n_pix % vgrid:
        raise ConfigError(
            f"instrument.velocity_grid={vgrid} must divide instrument.n_pix={n_pix} "
            f"(e.g. {n_pix // 2}), or be null."
        )
    return Instrument(n_pix, scale, sup, kernel, vgrid, **_spectral(c))


def _spectral(c: Mapping[str, Any]) -> dict[str, Any]:
    """The instrument's line, wavelength coverage (um) and resolving power (``lensml.sim.instrument``)."""
    from lensml.sim.instrument import EMISSION_LINES_ANGSTROM

    line = c.get("line", "H-alpha")
    rest = c.get("line_rest_angstrom")
    if rest is None:
        if line not in EMISSION_LINES_ANGSTROM:
            raise ConfigError(
                f"instrument.line={line!r} is unknown; use one of {list(EMISSION_LINES_ANGSTROM)} or give "
                "its rest wavelength, instrument.line_rest_angstrom=<Angstrom>."
            )
        rest = EMISSION_LINES_ANGSTROM[line]
    rest = _number({"line_rest_angstrom": rest}, "line_rest_angstrom", "instrument", 0.0, low_open=True)
    rng = c.get("wavelength_range_um", [1.0, 2.4])
    if not isinstance(rng, Sequence) or isinstance(rng, str) or len(rng) != 2:
        raise ConfigError(f"instrument.wavelength_range_um={rng!r} must be [low, high] in um.")
    lo, hi = (_number({"v": v}, "v", "instrument.wavelength_range_um", 0.0, low_open=True) for v in rng)
    if not lo < hi:
        raise ConfigError(f"instrument.wavelength_range_um={list(rng)} must satisfy low < high (um).")
    return {
        "name": str(c.get("name", "default")),
        "line": str(line),
        "line_rest_angstrom": rest,
        "wavelength_range_um": (lo, hi),
        "resolving_power": _number(
            {"r": c.get("resolving_power", 3800.0)}, "r", "instrument.resolving_power", 0.0, low_open=True
        ),
    }


def _mask_from(c: Mapping[str, Any]) -> str:
    from lensml.sim.instrument import MASK_FROM

    value = c.get("mask_from", "observed")
    if value not in MASK_FROM:
        raise ConfigError(f"noise.mask_from={value!r} is unknown; use one of {list(MASK_FROM)}.")
    return str(value)


def _noise(c: Mapping[str, Any]):  # noqa: ANN202
    from lensml.sim.instrument import Noise
    from lensml.sim.priors import check_range
    from lensml.sim.velocity_noise import KAPPA_BACKGROUND_LIMITED

    if c.get("sigma_v_kms") is not None:
        raise ConfigError(
            "noise.sigma_v_kms was removed: velocity errors now follow the emission line "
            "(lensml/sim/velocity_noise.py); set noise.sigma_v_floor_kms (systematic floor) and noise.kappa "
            "instead, and remove noise.sigma_v_kms."
        )
    peak_snr = c.get("peak_snr")
    if peak_snr is not None:
        check_range(peak_snr, "noise.peak_snr", 0.0, None, low_open=True, what="the peak S/N")
    kappa = c.get("kappa", KAPPA_BACKGROUND_LIMITED)
    return Noise(
        peak_snr=peak_snr,
        background_sigma_frac=_number(c, "background_sigma_frac", "noise", 0.0),
        kappa=_number({"kappa": kappa}, "kappa", "noise", 0.0),
        sigma_v_floor_kms=_number(c, "sigma_v_floor_kms", "noise", 0.0),
        sigma_v_max_kms=_number(c, "sigma_v_max_kms", "noise", 0.0, low_open=True),
        mask_frac_of_peak=_number(c, "mask_frac_of_peak", "noise", 0.0, 1.0),
        mask_from=_mask_from(c),
    )


# ----------------------------------------------------------------------------------------------------------
# the simulator
# ----------------------------------------------------------------------------------------------------------


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
        from lensml.sources.source_priors import SourceBatch

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


class LensSimulator(Simulator):
    """The simulator built from validated physics groups (see ``build_simulator``)."""

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
        self.sources = SourceSampler(cfg["source"], self.z_source, self.cosmology)
        self.n_pix = self.instrument.n_pix
        self.pixel_scale_arcsec = self.instrument.pixel_scale_arcsec
        self.lens_model_list = [self.macro_model, "SHEAR", self.subhalo.profile]
        # a subhalo mass at the top of the prior must be convertible (fails here, not in a worker)
        self._subhalo_kwargs(
            np.array([self.subhalo.mass_high_msun, 0.0]), np.ones(2), np.zeros(2), np.zeros(2), np.ones(2)
        )

    # -- drawing ------------------------------------------------------------------------------------------
    def draw_batch(self, seed: int, split: str, indices: Sequence[int] | np.ndarray) -> DrawBatch:
        """All random parameters of samples ``indices`` of ``split``, vectorised (module docstring)."""
        from lensml.sim.philox import uniforms, words64
        from lensml.sim.priors import quantile

        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        c, slot = self.lens_cfg, LENS_SLOTS
        u = uniforms(seed, stream_tag(split, "lens"), idx, len(LENS_SLOTS))
        lens = {"theta_E": quantile(c["theta_E"], u[:, slot["theta_E"]])}
        if self.macro_model == "EPL":
            lens["gamma"] = quantile(c["gamma"], u[:, slot["gamma"]])
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
        from lensml.sim.philox import uniforms
        from lensml.sim.priors import quantile
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
        keys = ("theta_E", "gamma", "e1", "e2", "center_x", "center_y")
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
        """Batch-first lenstronomy kwargs [macro, SHEAR, subhalo] of drawn samples (mass 0 when absent)."""
        draws = _as_batch(draws)
        macro_keys = ("theta_E", "gamma", "e1", "e2", "center_x", "center_y")
        macro = {k: draws.lens[k] for k in macro_keys if k in draws.lens}
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
        return [macro, shear, {k: np.asarray(v, dtype=float) for k, v in sub.items()}]

    # -- rendering ----------------------------------------------------------------------------------------
    def render_noiseless(self, draws: DrawBatch | Sequence[_Draw], split: str) -> dict[str, np.ndarray]:
        """Noiseless flux, velocity, mask (B, N, N) of drawn samples, with the configured backend.

        The batch is rendered in chunks of ``sim.chunk_size`` samples (cache-sized work; the values do not
        depend on the chunking).
        """
        draws = _as_batch(draws)
        n, b = self.n_pix, len(draws)
        out = {
            "flux": np.zeros((b, n, n), np.float32),
            "velocity": np.zeros((b, n, n), np.float32),
            "mask": np.zeros((b, n, n), bool),
        }
        step = self.chunk_size or b
        for start in range(0, b, step):
            part = self._render_chunk(draws.take(slice(start, start + step)), split)
            for key in out:
                out[key][start : start + step] = part[key]
        return out

    def _render_chunk(self, draws: DrawBatch, split: str) -> dict[str, np.ndarray]:
        from lensml.sim.render import render_lensed

        n, b = self.n_pix, len(draws)
        out = {
            "flux": np.zeros((b, n, n), np.float32),
            "velocity": np.zeros((b, n, n), np.float32),
            "mask": np.zeros((b, n, n), bool),
        }
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

    def sample_batch(self, seed: int, split: str, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Render samples ``indices`` of ``split`` (see the module docstring for the returned dict)."""
        from lensml.sim.instrument import add_noise, observed_mask, reported_sigmas

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
        if self.noise.mask_from == "observed":
            mask = observed_mask(flux, self.noise.mask_frac_of_peak)
        else:
            mask = clean["mask"]
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
        }

    def subhalo_metadata(self, draws: DrawBatch) -> dict[str, np.ndarray]:
        """Masses, tau, c200 of drawn subhaloes (``lensml.sim.subhalo.subhalo_masses``; 0 / NaN if none)."""
        from lensml.sim.subhalo import subhalo_masses

        mass = np.where(draws.present, draws.mass_msun, 0.0)
        return subhalo_masses(
            self.subhalo.profile, mass, self.z_lens, self.z_source, **self._subhalo_args(draws)
        )

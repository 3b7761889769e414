"""Config checks of the simulator: the physics groups of a composed config -> validated settings.

Every bad value raises one ``ConfigError`` naming the key (``subhalo.mass_bin``, ``lens.e1``, ...) and the
fix. Used by ``lensml.sim.simulator.build_simulator``; nothing here draws or renders.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lensml.errors import ConfigError

PHYSICS_GROUPS: tuple[str, ...] = ("source", "lens", "subhalo", "noise", "instrument", "sim")



def _physics_dict(cfg: Any) -> dict[str, Any]:
    """The physics groups of a DictConfig or mapping as plain dicts (their interpolations resolved)."""
    from omegaconf import DictConfig, OmegaConf

    from lensml.sim.known_keys import check_known_keys

    out = {}
    for group in PHYSICS_GROUPS:
        node = cfg.get(group) if isinstance(cfg, Mapping | DictConfig) else None
        if isinstance(node, DictConfig):
            node = OmegaConf.to_container(node, resolve=True)
        if not isinstance(node, Mapping):
            raise ConfigError(
                f"config group {group!r} is missing; compose it ({group}=<name>) or add it."
            )
        check_known_keys(group, node)
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
    truncation: str = "tidal"
    depth_prior: str = "uniform"
    depth_r_max_r200: float = 1.0


def _check_lens(c: Mapping[str, Any]) -> None:
    from lensml.numerics.priors import check_range, support, validate_prior
    from lensml.sim.macro_lens import MACRO_MODELS, Q_MIN
    from lensml.sim.profiles import PROFILES

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
    profile = PROFILES[c["model"]]
    for name, (lo, hi, lo_open, hi_open) in profile.extra.get("prior_ranges", {}).items():
        check_range(
            c.get(name), f"lens.{name}", lo, hi, lo_open, hi_open, what=f"the {profile.name} {name}"
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
    from lensml.numerics.priors import validate_prior

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

    conc = c.get("concentration", "moline17")  # the defaults of conf/subhalo/tnfw.yaml
    if isinstance(conc, str):
        if conc.lower() not in CONCENTRATIONS:
            raise ConfigError(
                f"subhalo.concentration={conc!r} is unknown; use one of {list(CONCENTRATIONS)} or a number."
            )
    else:
        conc = _number(c, "concentration", "subhalo", 0.0, low_open=True)
    tau = _number(c, "tau_trunc", "subhalo", 0.0, low_open=True)
    truncation = c.get("truncation", "tidal")
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
    return Instrument(n_pix, scale, sup, kernel, vgrid, **_spectral(c), **_cube(c))


def _cube(c: Mapping[str, Any]) -> dict[str, Any]:
    """The IFU cube's channels (``lensml.sim.cube``): ``instrument.n_velocity_channels`` (0 = off),
    ``instrument.channel_width_kms`` or ``instrument.velocity_range_kms`` (km/s)."""
    nv = _number({"n_velocity_channels": c.get("n_velocity_channels", 0)}, "n_velocity_channels",
                 "instrument", 0, integer=True)
    width = _number(c, "channel_width_kms", "instrument", 0.0, low_open=True, allow_none=True)
    rng = _number({"velocity_range_kms": c.get("velocity_range_kms", 600.0)}, "velocity_range_kms",
                  "instrument", 0.0, low_open=True, allow_none=True)
    if nv and (width is None) == (rng is None):
        raise ConfigError(
            f"instrument.n_velocity_channels={nv} needs exactly one of instrument.channel_width_kms "
            f"(got {width}) and instrument.velocity_range_kms (got {rng}): channels of a given width "
            "centred on 0, or tiling [-range, range]; set the other one to null."
        )
    return {"n_velocity_channels": nv, "channel_width_kms": width, "velocity_range_kms": rng}


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
    from lensml.numerics.priors import check_range
    from lensml.sim.instrument import Noise
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
        mask_min_snr=_number({"mask_min_snr": c.get("mask_min_snr", 3.0)}, "mask_min_snr", "noise", 0.0),
    )

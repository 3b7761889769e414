"""Cosmology by name and the cached lens-source distances used to turn masses into angles.

Default cosmology: astropy's ``Planck18``. Distances are angular-diameter distances in Mpc (astropy);
critical densities are physical, in M_sun / Mpc^3. Physical constants (G, c, M_sun, Mpc, arcsec) are
lenstronomy's (``lenstronomy.Util.constants``) so that angular parameters agree one-to-one with
``lenstronomy.Cosmo.lens_cosmo.LensCosmo``; they differ from astropy's CODATA/IAU values by < 4e-4.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import astropy.cosmology as ac
import astropy.units as u
from lenstronomy.Cosmo.lens_cosmo import LensCosmo

from lensml.errors import ConfigError

DEFAULT_COSMOLOGY = "Planck18"


def available_cosmologies() -> tuple[str, ...]:
    """Names accepted by ``get_cosmology`` (astropy's built-in realisations)."""
    return tuple(ac.realizations.available)


@functools.cache
def get_cosmology(name: str = DEFAULT_COSMOLOGY) -> ac.Cosmology:
    """The astropy cosmology called ``name`` (e.g. 'Planck18', 'WMAP9')."""
    if name not in available_cosmologies():
        raise ConfigError(
            f"Unknown cosmology {name!r} (config key lens.cosmology); "
            f"use one of {list(available_cosmologies())}."
        )
    return getattr(ac, name)


@dataclass(frozen=True)
class LensDistances:
    """Distances (Mpc, angular diameter) and densities of one lens-source configuration."""

    z_lens: float
    z_source: float
    cosmology: str
    d_l_mpc: float
    d_s_mpc: float
    d_ls_mpc: float
    rho_crit_lens_msun_mpc3: float  # critical density at z_lens (physical)
    h: float


def _check_redshifts(z_lens: float, z_source: float) -> None:
    if not z_lens > 0:
        raise ConfigError(f"lens.z_lens = {z_lens} must be > 0; set a positive lens redshift.")
    if not z_source > z_lens:
        raise ConfigError(
            f"lens.z_source = {z_source} must be larger than lens.z_lens = {z_lens}; "
            "put the source behind the lens."
        )


def _d_ls(cosmo: ac.Cosmology, z_lens: float, z_source: float) -> u.Quantity:
    """Angular-diameter distance between two redshifts (astropy >= 7: two-argument form)."""
    try:
        return cosmo.angular_diameter_distance(z_lens, z_source)
    except TypeError:  # astropy < 7
        return cosmo.angular_diameter_distance_z1z2(z_lens, z_source)


@functools.lru_cache(maxsize=256)
def lens_distances(z_lens: float, z_source: float, cosmology: str = DEFAULT_COSMOLOGY) -> LensDistances:
    """Cached distances and critical density for (z_lens, z_source, cosmology name)."""
    _check_redshifts(z_lens, z_source)
    cosmo = get_cosmology(cosmology)
    return LensDistances(
        z_lens=float(z_lens),
        z_source=float(z_source),
        cosmology=cosmology,
        d_l_mpc=float(cosmo.angular_diameter_distance(z_lens).to_value(u.Mpc)),
        d_s_mpc=float(cosmo.angular_diameter_distance(z_source).to_value(u.Mpc)),
        d_ls_mpc=float(_d_ls(cosmo, z_lens, z_source).to_value(u.Mpc)),
        rho_crit_lens_msun_mpc3=float(cosmo.critical_density(z_lens).to_value(u.M_sun / u.Mpc**3)),
        h=float(cosmo.h),
    )


@functools.lru_cache(maxsize=256)
def lens_cosmo(z_lens: float, z_source: float, cosmology: str = DEFAULT_COSMOLOGY) -> LensCosmo:
    """Cached lenstronomy ``LensCosmo`` for (z_lens, z_source, cosmology name) (the reference conversions)."""
    _check_redshifts(z_lens, z_source)
    return LensCosmo(z_lens=z_lens, z_source=z_source, cosmo=get_cosmology(cosmology))

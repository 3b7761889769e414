"""Every registered lens profile against lenstronomy through the shared check (``lenstronomy_check``), and
the registry's own consistency."""

from __future__ import annotations

import pytest

from lensml.sim.profiles import PROFILES
from lensml.sim.profiles.base import GRID_EVAL, KERNEL_SLOTS, ROLES, TORCH_EVAL
from tests.sim.lenstronomy_check import check_profile

#: One lenstronomy kwargs example per profile (the multipoles have their own test module).
EXAMPLES = {
    "SIS": {"theta_E": 0.05, "center_x": 0.7, "center_y": 0.4},
    "SIE": {"theta_E": 1.1, "e1": 0.12, "e2": -0.07, "center_x": 0.02, "center_y": -0.01},
    "EPL": {"theta_E": 1.0, "gamma": 2.15, "e1": 0.1, "e2": 0.05, "center_x": -0.02, "center_y": 0.03},
    "SHEAR": {"gamma1": 0.04, "gamma2": -0.02},
    "NFW": {"Rs": 0.3, "alpha_Rs": 0.02, "center_x": 0.6, "center_y": -0.5},
    "TNFW": {"Rs": 0.3, "alpha_Rs": 0.02, "r_trunc": 0.5, "center_x": -0.6, "center_y": 0.5},
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_profile_matches_lenstronomy(name):
    check_profile(name, EXAMPLES[name])


def test_every_profile_is_declared_consistently():
    for name, p in PROFILES.items():
        assert p.name == name and p.role in ROLES
        assert p.torch_eval in TORCH_EVAL and p.grid_eval in GRID_EVAL
        assert p.kernel is None or p.kernel.slot in KERNEL_SLOTS
        assert p.strength is None or p.strength in p.params
        assert set(p.optional) <= set(p.params)
        if p.torch_eval == "radial_table" or p.grid_eval == "radial_table":
            assert p.radial_kwargs is not None

"""A typo'd key in a physics group stops the run with one line naming it (issue 11: unknown keys)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from lensml.errors import ConfigError
from lensml.paths import CONF_DIR
from lensml.sim.simulator import build_simulator


def _cfg(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("preview", overrides=list(overrides))


@pytest.mark.parametrize(
    ("override", "named", "suggested"),
    [
        ("+noise.sigma_v_flor_kms=3", "noise.sigma_v_flor_kms", "sigma_v_floor_kms"),
        ("+subhalo.depth.prio=isothermal", "subhalo.depth.prio", "subhalo.depth.prior"),
        ("+lens.theta_e=1.0", "lens.theta_e", "theta_E"),
        ("+source.n_clump=2", "source.n_clump", "n_clumps"),
    ],
)
def test_unknown_physics_key_is_refused_with_the_closest_key(
    override: str, named: str, suggested: str
) -> None:
    with pytest.raises(ConfigError, match="is not a key") as err:
        build_simulator(_cfg(override))
    assert named in str(err.value) and suggested in str(err.value)


@pytest.mark.parametrize(
    "choice",
    [
        "source=manga", "source=mixed", "lens=epl", "noise=low_snr", "instrument=jwst_nirspec",
        "sim=lenstronomy",
    ],
)
def test_every_shipped_preset_passes(choice: str) -> None:
    from lensml.sim.known_keys import check_known_keys

    cfg = _cfg(choice)
    for group in ("source", "lens", "subhalo", "noise", "instrument", "sim"):
        check_known_keys(group, cfg[group])

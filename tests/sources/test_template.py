"""MaNGA template sources from the real shared MAPS file: units, placement, held-out lists, the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from lensml.errors import DataError
from lensml.paths import CONF_DIR
from lensml.sim.simulator import build_simulator
from lensml.sources.template import load_templates, template_files

SMALL = ["instrument.n_pix=32", "instrument.pixel_scale_arcsec=0.1"]


@pytest.fixture(scope="module")
def template_dir(tmp_path_factory: pytest.TempPathFactory, real_maps_path: Path) -> Path:
    """Source tensors made from the real MaNGA MAPS file by the data layer."""
    from lensml.data.source_tensor import prepare_source

    out = tmp_path_factory.mktemp("sources")
    prepare_source(real_maps_path, out, preview=False)
    return out


def _cfg(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("preview", overrides=list(overrides))


def test_velocity_is_back_in_kms(template_dir: Path):
    files = template_files(template_dir)
    lib = load_templates(files)
    tensor = np.load(files[0])
    side = json.loads(files[0].with_suffix(".json").read_text())
    np.testing.assert_allclose(lib.velocity_kms[0], tensor[1] * side["vel_scale_kms"], rtol=1e-6)
    np.testing.assert_array_equal(lib.flux[0], tensor[0])
    assert lib.plateifu == (side["plateifu"],)
    assert 20 < np.abs(lib.velocity_kms).max() < 1000


def test_explicit_template_lists(template_dir: Path):
    plateifu = load_templates(template_files(template_dir)).plateifu[0]
    assert template_files(template_dir, [plateifu]) == template_files(template_dir)
    with pytest.raises(DataError, match="not found"):
        template_files(template_dir, ["1-2"])


def test_simulator_renders_templates(template_dir: Path):
    sim = build_simulator(
        _cfg(
            *SMALL,
            "source=manga",
            f"source.template_dir={template_dir}",
            "noise.sigma_v_floor_kms=0",
            "noise.peak_snr=null",
            "noise.background_sigma_frac=0",
        )
    )
    out = sim.sample_batch(0, "train", range(4))
    lib = load_templates(template_files(template_dir))
    assert list(out["source_id"]) == [lib.plateifu[0]] * 4
    assert out["mask"].mean() > 0.05
    # a flux-weighted mean of template velocities can never leave their range
    v_max = np.abs(lib.velocity_kms).max()
    assert np.abs(out["velocity"]).max() <= v_max * (1 + 1e-5)
    assert np.abs(out["velocity"]).max() > 0.3 * v_max


def test_mixed_source_uses_both_kinds(template_dir: Path):
    sim = build_simulator(
        _cfg(*SMALL, "source=mixed", f"source.template_dir={template_dir}", "source.grid_npix=48")
    )
    ids = set(sim.sample_batch(0, "train", range(12))["source_id"])
    assert "disk" in ids and len(ids) == 2


def test_physical_size_uses_the_cosmology(template_dir: Path):
    sim = build_simulator(
        _cfg(
            *SMALL,
            "source=manga",
            f"source.template_dir={template_dir}",
            "source.size_kpc=10.0",
            "source.scale=1.0",
        )
    )
    half = sim.draw(0, "train", 0)[0].source.params["half_size_arcsec"]
    # Planck18, z = 2: ~8.5 kpc per arcsec, so 10 kpc span ~ 1.18 arcsec
    assert 2 * half == pytest.approx(1.18, abs=0.03)

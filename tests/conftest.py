"""Shared test fixtures: W&B always offline and silent; a temporary working directory on request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lensml.paths import CONF_DIR, shared_manga_dir

os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")


REAL_MAPS_NAME = "manga-7815-3702-MAPS-HYB10-GAU-MILESHC.fits.gz"
#: set to 1 (as .ci/run does) to make a missing shared MaNGA file a failure instead of a skip
REQUIRE_SHARED_ENV = "LENSML_REQUIRE_SHARED"


@pytest.fixture(scope="session")
def real_maps_path() -> Path:
    """The real MaNGA MAPS file in ``../shared/data/manga`` (or ``$LENSML_SHARED/data/manga``).

    Absent: the test is skipped with the reason, or fails when ``LENSML_REQUIRE_SHARED=1`` (CI).
    """
    path = shared_manga_dir() / REAL_MAPS_NAME
    if not path.is_file():
        msg = f"real MaNGA file {path} absent (set LENSML_SHARED to the folder holding data/manga/)"
        if os.environ.get(REQUIRE_SHARED_ENV) == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside ``tmp_path`` (relative outputs such as ``outputs/`` land there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _compose_train(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=["run_dir=.", *overrides])


@pytest.fixture(scope="session")
def compose_train():
    """``compose_train(*overrides)``: conf/train.yaml composed outside a Hydra run (``run_dir`` = ``.``)."""
    return _compose_train


@pytest.fixture(scope="session")
def tiny() -> tuple[str, ...]:
    """Overrides for small, fast physics in data tests: 32 x 32 pixels of 0.1", no supersampling."""
    return ("instrument.n_pix=32", "instrument.pixel_scale_arcsec=0.1", "instrument.supersample=1")

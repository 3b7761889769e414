"""Fixtures of the Layer-1 tests: the real shared MAPS file and small synthetic MAPS files in both layouts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from synthetic_maps import write_synthetic_maps

from lensml.data.maps_reader import MapsData, read_maps


@pytest.fixture(scope="session")
def real_maps(real_maps_path: Path) -> MapsData:
    return read_maps(real_maps_path)


@pytest.fixture(scope="session")
def dr17_maps_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dr17") / "manga-99999-1901-MAPS-HYB10-MILESHC-MASTARHC2.fits.gz"
    return write_synthetic_maps(out, layout="dr17")


@pytest.fixture(scope="session")
def dr15_maps_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dr15") / "manga-99999-1902-MAPS-HYB10-GAU-MILESHC.fits"
    return write_synthetic_maps(out, layout="dr15", plateifu="99999-1902")


@pytest.fixture
def make_maps(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_maps(name="x.fits.gz", **write_synthetic_maps kwargs)`` writes into ``tmp_path``."""

    def _make(name: str = "manga-99999-1903-MAPS-TEST.fits.gz", **kwargs) -> Path:  # noqa: ANN003
        return write_synthetic_maps(tmp_path / name, **kwargs)

    return _make

"""Shared test fixtures: W&B always offline and silent; a temporary working directory on request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside ``tmp_path`` (relative outputs such as ``outputs/`` land there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path

"""``python -m lensml.preview`` writes a PNG for a config (run as a real subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lensml.paths import PROJECT_ROOT


def test_preview_cli_writes_a_png(tmp_path: Path):
    out = tmp_path / "preview.png"
    cmd = [
        sys.executable,
        "-m",
        "lensml.preview",
        f"out={out}",
        "n_examples=2",
        "subhalo.mass_bin=1e9",
        "noise=low_snr",
        "instrument.n_pix=32",
        "instrument.pixel_scale_arcsec=0.1",
        "source.grid_npix=48",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    res = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000


def test_preview_refuses_bad_config_with_the_key(tmp_path: Path):
    cmd = [
        sys.executable,
        "-m",
        "lensml.preview",
        f"out={tmp_path / 'x.png'}",
        "subhalo.mass_bin=-1e8",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    res = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "subhalo.mass_bin" in res.stderr
    assert not (tmp_path / "x.png").exists()

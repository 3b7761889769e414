"""The Layer-1 CLIs run for real (subprocess, from another folder): outputs, batches, clean errors."""

from __future__ import annotations

import csv
import functools
import http.server
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from synthetic_maps import write_synthetic_maps

from lensml.data.download import maps_filename
from lensml.data.source_tensor import SIDECAR_KEYS, load_source_tensor


def _run(module: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"lensml.{module}", *overrides],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def _clean_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_prepare_sources_real_file_relative_out_dir(tmp_path, real_maps_path):
    proc = _run("prepare_sources", f"maps={real_maps_path}", "out_dir=rel/sources", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "rel" / "sources"
    tensor, side = load_source_tensor(out / "source_tensor_7815-3702.npy")
    assert tensor.shape == (2, 64, 64) and set(SIDECAR_KEYS) <= set(side)
    assert np.load(out / "source_mask_7815-3702.npy").dtype == bool
    assert (out / "previews" / "preview_7815-3702.png").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"]  # no outputs/ or .hydra/ left in the way


def test_prepare_sources_single_bad_file_is_one_clean_line(tmp_path):
    bad = tmp_path / "manga-1-1-MAPS-X.fits.gz"
    bad.write_text("not fits")
    line = _clean_error(_run("prepare_sources", f"maps={bad}", "out_dir=out", cwd=tmp_path))
    assert str(bad) in line and "Fix" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_prepare_sources_batch_goes_on(tmp_path):
    maps_dir = tmp_path / "maps"
    write_synthetic_maps(maps_dir / "manga-99999-1901-MAPS-HYB10-MILESHC-MASTARHC2.fits.gz")
    (maps_dir / "manga-99999-1902-MAPS-HYB10-MILESHC-MASTARHC2.fits.gz").write_bytes(b"\x1f\x8bbroken")
    write_synthetic_maps(maps_dir / "manga-99999-1903-MAPS-X.fits.gz", lines=["Hb-4862", "NII-6585"])
    proc = _run("prepare_sources", "maps=maps", "out_dir=out", "previews=false", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # good file written; scripts must notice the failures
    written = sorted(p.name for p in (tmp_path / "out").glob("source_tensor_*.npy"))
    assert written == ["source_tensor_99999-1901.npy"]
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 2 and "'Ha-6564' is not in this file" in proc.stderr
    side = json.loads((tmp_path / "out" / "source_tensor_99999-1901.json").read_text())
    assert side["line_channel"] == "C24"


def test_inspect_maps_dir_with_bad_file(tmp_path, real_maps_path):
    maps_dir = tmp_path / "maps"
    maps_dir.mkdir()
    (maps_dir / real_maps_path.name).symlink_to(real_maps_path)
    write_synthetic_maps(maps_dir / "manga-99999-1904-MAPS-P.fits.gz", patchy=0.7)
    (maps_dir / "manga-99999-1905-MAPS-BAD.fits").write_text("junk")
    proc = _run("inspect_maps", "maps=maps", "out_dir=q", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # one unreadable file: exit 1, the summary lists all three
    assert "inspect_maps:" in proc.stderr and "3/3" in proc.stderr  # tqdm bar
    with open(tmp_path / "q" / "maps_quality_summary.csv") as fh:
        rows = {Path(r["file"]).name: r for r in csv.DictReader(fh)}
    assert rows[real_maps_path.name]["usable"] == "True"
    assert rows["manga-99999-1904-MAPS-P.fits.gz"]["usable"] == "False"
    assert rows["manga-99999-1904-MAPS-P.fits.gz"]["reason"]
    assert rows["manga-99999-1905-MAPS-BAD.fits"]["status"] == "error"
    index = (tmp_path / "q" / "usable_maps_index.txt").read_text().splitlines()
    assert [Path(p).name for p in index] == [real_maps_path.name]
    assert "bad file:" in proc.stderr


@pytest.mark.parametrize("module", ["prepare_sources", "inspect_maps"])
def test_batch_with_one_bad_file_exits_1_and_all_good_exits_0(tmp_path, module):
    """Scripts notice a failed file: exit 1 with one bad + one good file, 0 when all are good (row 5)."""
    maps_dir = tmp_path / "maps"
    write_synthetic_maps(maps_dir / "manga-99999-1901-MAPS-HYB10-MILESHC-MASTARHC2.fits.gz")
    extra = ["previews=false"] if module == "prepare_sources" else []
    good = _run(module, "maps=maps", "out_dir=out", *extra, cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    (maps_dir / "manga-99999-1902-MAPS-HYB10-MILESHC-MASTARHC2.fits.gz").write_bytes(b"\x1f\x8bbroken")
    bad = _run(module, "maps=maps", "out_dir=out2", *extra, cwd=tmp_path)
    assert bad.returncode == 1, bad.stderr
    assert "99999-1902" in bad.stderr and "Traceback" not in bad.stderr
    assert "1 failed" in bad.stdout or "1 unreadable" in bad.stdout


def test_inspect_maps_single_missing_file(tmp_path):
    line = _clean_error(_run("inspect_maps", "maps=nope.fits.gz", "out_dir=q", cwd=tmp_path))
    assert "nope.fits.gz" in line


@pytest.fixture
def sas_server(tmp_path):
    """SimpleHTTPRequestHandler over a folder laid out like the DR17 SAS tree."""
    root = tmp_path / "www"
    daptype = "HYB10-MILESHC-MASTARHC2"
    write_synthetic_maps(root / "sas" / daptype / "99999" / "1901" / maps_filename("99999-1901"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sas"
    server.shutdown()
    server.server_close()


def test_download_manga_cli(tmp_path, sas_server):
    base = f"base_url={sas_server}"
    proc = _run("download_manga", "plateifus=[99999-1901]", "out_dir=dl", base, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [maps_filename("99999-1901")]
    proc = _run(
        "download_manga", "plateifus=[99999-1901,99999-1999]", "out_dir=dl", f"base_url={sas_server}",
        "backoff_s=0.01", cwd=tmp_path,
    )
    line = _clean_error(proc)
    assert "HTTP 404" in line and "99999/1999" in line
    assert "1/2 MAPS files" in proc.stdout


def test_download_manga_without_network_fails_fast(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _run(
        "download_manga", "out_dir=dl", f"base_url=http://127.0.0.1:{port}/sas", "retries=2",
        "backoff_s=0.01", cwd=tmp_path,
    )
    line = _clean_error(proc)
    assert f"http://127.0.0.1:{port}/sas/HYB10-MILESHC-MASTARHC2/8593/12705/" in line and "by hand" in line
    assert "4 more file(s) not tried" in proc.stderr
    assert not (tmp_path / "dl").exists() or not any((tmp_path / "dl").iterdir())

"""Downloads against a real HTTP server on 127.0.0.1 (good file, truncated transfers, 404, flaky, refused)."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from synthetic_maps import write_synthetic_maps

from lensml.data.download import (
    CANONICAL_LIST,
    DR17_BASE_URL,
    NetworkError,
    download_file,
    download_maps,
    maps_filename,
    maps_url,
    read_plateifu_list,
    verify_maps_file,
)
from lensml.errors import DataError, DownloadError

DAPTYPE = "HYB10-MILESHC-MASTARHC2"
GOOD, CUT, SHORT, FLAKY, HANG = "99999-1901", "99999-1902", "99999-1903", "99999-1904", "99999-1905"


class _Archive:
    """A tiny SAS look-alike: /sas/<daptype>/<plate>/<ifu>/<file>. Counts requests per plateifu."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()  # HANG requests stall mid-transfer until this is set

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        archive = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002 - keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                parts = self.path.strip("/").split("/")
                plateifu = f"{parts[-3]}-{parts[-2]}" if len(parts) >= 5 else "?"
                archive.hits[plateifu] += 1
                data = archive.payload
                if parts[:2] != ["sas", DAPTYPE] or plateifu not in (GOOD, CUT, SHORT, FLAKY, HANG):
                    self.send_error(404, "Not Found")
                    return
                if plateifu == CUT or (plateifu == FLAKY and archive.hits[plateifu] == 1):
                    # announce the whole file, send half, hang up: a broken transfer
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return
                if plateifu == HANG:  # half the file, then a stall: the client is mid-write
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    archive.release.wait(30)
                    self.close_connection = True
                    return
                if plateifu == SHORT:
                    data = data[: len(data) // 2]  # honest length, truncated content: gzip check fails
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    src = write_synthetic_maps(tmp_path_factory.mktemp("archive") / "src.fits.gz", layout="dr17")
    arch = _Archive(src.read_bytes())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), arch.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    arch.base_url = f"http://127.0.0.1:{server.server_address[1]}/sas"
    yield arch
    arch.release.set()
    server.shutdown()
    server.server_close()


def _no_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_url_layout_is_dr17():
    url = maps_url("8593-12705")
    assert url == (
        "https://data.sdss.org/sas/dr17/manga/spectro/analysis/v3_1_1/3.1.0/HYB10-MILESHC-MASTARHC2/"
        "8593/12705/manga-8593-12705-MAPS-HYB10-MILESHC-MASTARHC2.fits.gz"
    )
    assert url.startswith(DR17_BASE_URL)
    with pytest.raises(DataError, match="plate"):
        maps_url("8593_12705")


def test_canonical_list():
    assert read_plateifu_list(CANONICAL_LIST) == [
        "8593-12705", "8993-12705", "8652-12703", "12071-12702", "10500-12703",
    ]


def test_good_file_then_skip(archive, tmp_path):
    kw = dict(out_dir=tmp_path, base_url=archive.base_url, retries=2, backoff_s=0.01, timeout_s=5)
    before = archive.hits[GOOD]
    paths, errors = download_maps([GOOD], **kw)
    assert errors == [] and paths == [tmp_path / maps_filename(GOOD)]
    assert paths[0].read_bytes() == archive.payload
    verify_maps_file(paths[0])
    assert _no_leftovers(tmp_path) == [paths[0].name]
    paths2, _ = download_maps([GOOD], **kw)
    assert paths2 == paths and archive.hits[GOOD] == before + 1  # present and valid: not fetched again


def test_corrupt_existing_file_is_replaced(archive, tmp_path):
    dest = tmp_path / maps_filename(GOOD)
    dest.write_bytes(b"half a file")
    paths, errors = download_maps([GOOD], tmp_path, base_url=archive.base_url, retries=1, timeout_s=5)
    assert not errors and dest.read_bytes() == archive.payload


@pytest.mark.parametrize("plateifu", [CUT, SHORT])
def test_truncated_transfer_is_retried_then_refused(archive, tmp_path, plateifu):
    url = maps_url(plateifu, archive.base_url)
    before = archive.hits[plateifu]
    with pytest.raises(DownloadError) as exc:
        download_file(url, tmp_path / maps_filename(plateifu), timeout_s=5, retries=3, backoff_s=0.01)
    assert archive.hits[plateifu] - before == 3
    assert url in str(exc.value) and "by hand" in str(exc.value)
    assert _no_leftovers(tmp_path) == []


def test_broken_transfer_recovers_on_retry(archive, tmp_path):
    url = maps_url(FLAKY, archive.base_url)
    dest = download_file(url, tmp_path / "flaky.fits.gz", timeout_s=5, retries=3, backoff_s=0.01)
    assert dest.read_bytes() == archive.payload and archive.hits[FLAKY] == 2


def test_404_is_not_retried_and_batch_goes_on(archive, tmp_path):
    missing = "99999-9999"
    paths, errors = download_maps(
        [missing, GOOD], tmp_path, base_url=archive.base_url, retries=3, backoff_s=0.01, timeout_s=5
    )
    assert archive.hits[missing] == 1
    assert len(errors) == 1 and "HTTP 404" in str(errors[0])
    assert maps_url(missing, archive.base_url) in str(errors[0])
    assert paths == [tmp_path / maps_filename(GOOD)]


def test_404_says_the_file_is_not_on_the_archive(archive, tmp_path):
    """A 404 names the plate-ifu and the URL and does not blame the network (issue 11, row 11)."""
    missing = "99999-9998"
    _, errors = download_maps([missing], tmp_path, base_url=archive.base_url, retries=3, timeout_s=5)
    msg = str(errors[0])
    assert "not on the archive" in msg and missing in msg and maps_url(missing, archive.base_url) in msg
    assert "network" not in msg.replace("the network is fine", "")
    assert "check the network" not in msg


def test_killed_download_leaves_a_temp_that_the_next_run_sweeps(archive, tmp_path):
    """A real SIGKILL of a download mid-transfer; the next download_maps removes its temp file (row 2)."""
    script = (
        "import sys; from lensml.data.download import download_file, maps_url; "
        f"download_file(maps_url({HANG!r}, sys.argv[1]), sys.argv[2], timeout_s=60, retries=1)"
    )
    dest = tmp_path / maps_filename(HANG)
    before = archive.hits[HANG]
    proc = subprocess.Popen([sys.executable, "-c", script, archive.base_url, str(dest)])
    try:
        deadline = time.time() + 60  # wait until the transfer is under way (temp file open, request served)
        while (archive.hits[HANG] == before or not any(tmp_path.iterdir())) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        proc.kill()
        archive.release.set()
    temps = [p.name for p in tmp_path.iterdir()]
    assert len(temps) == 1 and temps[0].startswith(f".{dest.name}.") and ".tmp" in temps[0], temps
    paths, errors = download_maps([GOOD], tmp_path, base_url=archive.base_url, retries=1, timeout_s=5)
    assert not errors and _no_leftovers(tmp_path) == [maps_filename(GOOD)]


def test_downloaded_file_follows_the_umask(archive, tmp_path):
    old = os.umask(0o002)
    try:
        paths, _ = download_maps([GOOD], tmp_path, base_url=archive.base_url, retries=1, timeout_s=5)
    finally:
        os.umask(old)
    assert paths[0].stat().st_mode & 0o777 == 0o664


def test_unreachable_archive_fails_fast_and_stops_batch(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/sas"
    paths, errors = download_maps([GOOD, FLAKY], tmp_path, base_url=base, retries=2, backoff_s=0.01)
    assert paths == [] and len(errors) == 1 and isinstance(errors[0], NetworkError)
    msg = str(errors[0])
    assert maps_url(GOOD, base) in msg and "place it at" in msg
    assert _no_leftovers(tmp_path) == []

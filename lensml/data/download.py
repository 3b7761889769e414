"""Download MaNGA DR17 DAP MAPS files from the SDSS Science Archive Server (standard library only).

URL layout (DR17, DAP v3_1_1 / 3.1.0)::

    <base_url>/<daptype>/<plate>/<ifu>/manga-<plate>-<ifu>-MAPS-<daptype>.fits.gz
    base_url = https://data.sdss.org/sas/dr17/manga/spectro/analysis/v3_1_1/3.1.0
    daptype  = HYB10-MILESHC-MASTARHC2

Every file is written under a temporary name in the destination folder and renamed only after the gzip
stream and the FITS structure check out (``verify_maps_file``); a failed or interrupted transfer leaves
nothing behind, and the temporary file of a killed download is swept by the next run. Broken transfers are
retried (``retries`` attempts, exponential backoff); a 4xx answer or an unresolvable host is not retried; a
404 says the file is not on the archive (plate-ifu and URL), not that the network failed.
"""

from __future__ import annotations

import http.client
import logging
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from lensml.atomic_io import atomic_path, sweep_stale_temps
from lensml.data.maps_reader import check_complete
from lensml.errors import DataError, DownloadError
from lensml.paths import PROJECT_ROOT

log = logging.getLogger(__name__)

DR17_BASE_URL = "https://data.sdss.org/sas/dr17/manga/spectro/analysis/v3_1_1/3.1.0"
DR17_DAPTYPE = "HYB10-MILESHC-MASTARHC2"
CANONICAL_LIST = PROJECT_ROOT / "data" / "canonical_sources.txt"
DEFAULT_OUT_DIR = PROJECT_ROOT / "data" / "maps"
_PLATEIFU = re.compile(r"^(\d{4,5})-(\d{3,5})$")
_CHUNK = 1 << 16

#: ``reporter(total_bytes_or_None, description)`` -> a context manager with ``update(n_bytes)`` (e.g. tqdm).
Reporter = Callable[[int | None, str], AbstractContextManager[Any]]


class NetworkError(DownloadError):
    """The archive cannot be reached (no DNS, refused, timed out): the rest of a batch would fail too."""


class NotOnArchiveError(DownloadError):
    """The archive answered 404: the file does not exist there (wrong plate-ifu, daptype or base_url)."""


class _NullBar:
    def update(self, n: int) -> None:
        pass


def parse_plateifu(plateifu: str) -> tuple[str, str]:
    """Split ``"8593-12705"`` into ``("8593", "12705")``; DataError for anything else."""
    m = _PLATEIFU.match(str(plateifu).strip())
    if not m:
        raise DataError(f"plateifu {plateifu!r} is not <plate>-<ifudesign> (e.g. 8593-12705); correct it.")
    return m.group(1), m.group(2)


def maps_filename(plateifu: str, daptype: str = DR17_DAPTYPE) -> str:
    plate, ifu = parse_plateifu(plateifu)
    return f"manga-{plate}-{ifu}-MAPS-{daptype}.fits.gz"


def maps_url(plateifu: str, base_url: str = DR17_BASE_URL, daptype: str = DR17_DAPTYPE) -> str:
    """The archive URL of one MAPS file (module docstring)."""
    plate, ifu = parse_plateifu(plateifu)
    return f"{base_url.rstrip('/')}/{daptype}/{plate}/{ifu}/{maps_filename(plateifu, daptype)}"


def read_plateifu_list(path: str | Path = CANONICAL_LIST) -> list[str]:
    """Plateifus of a list file: first token of each line; blank lines and ``#`` comments skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: plateifu list not found. Fix: give plateifus=[...] or a list_file.")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        token = line.split("#", 1)[0].split()
        if token:
            parse_plateifu(token[0])
            out.append(token[0])
    return out


def verify_maps_file(path: str | Path) -> None:
    """Raise DataError unless ``path`` is a complete gzip/FITS file holding an ``EMLINE_GFLUX`` extension."""
    from astropy.io import fits

    path = Path(path)
    try:
        check_complete(path)
        with fits.open(path, memmap=False) as hdul:
            names = {h.name.upper() for h in hdul}
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    if "EMLINE_GFLUX" not in names:
        raise DataError(f"{path}: FITS file without EMLINE_GFLUX; not a DAP MAPS file")


def _manual_fix(url: str, dest: Path) -> str:
    return (
        f"Fix: check the network (or set base_url= to a mirror), or fetch the file by hand on a machine "
        f"with access (`curl -fL -o {dest.name} {url}`) and place it at {dest}."
    )


def _not_on_archive(url: str, plateifu: str | None, code: int, reason: str) -> str:
    what = f"plate-ifu {plateifu}" if plateifu else "this file"
    return (
        f"{url}: HTTP {code} {reason}: {what} is not on the archive. Fix: check the plate-ifu (e.g. on "
        "https://dr17.sdss.org/marvin) and that daptype= and base_url= name a release holding it; the "
        "network is fine."
    )


def download_file(
    url: str,
    dest: str | Path,
    timeout_s: float = 20.0,
    retries: int = 3,
    backoff_s: float = 1.0,
    reporter: Reporter | None = None,
    plateifu: str | None = None,
) -> Path:
    """Fetch ``url`` to ``dest`` (temp name, verified, then renamed); retries broken transfers.

    Raises ``DownloadError`` naming the URL and how to place the file by hand (``NotOnArchiveError`` for a
    404, naming ``plateifu``); nothing partial stays on disk.
    """
    dest = Path(dest)
    retries = max(1, int(retries))
    last: BaseException | None = None
    for attempt in range(1, retries + 1):
        try:
            with atomic_path(dest) as tmp:
                _fetch(url, tmp, timeout_s, reporter, desc=dest.name)
                verify_maps_file(tmp)
            log.info("downloaded %s -> %s", url, dest)
            return dest
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                raise NotOnArchiveError(_not_on_archive(url, plateifu, exc.code, exc.reason)) from exc
            if 400 <= exc.code < 500:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}. {_manual_fix(url, dest)}") from exc
            last = exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, socket.gaierror):  # no DNS: no network; retrying will not help
                msg = f"{url}: cannot resolve the host ({exc.reason}). {_manual_fix(url, dest)}"
                raise NetworkError(msg) from exc
            last = exc
        except (http.client.HTTPException, OSError, DataError) as exc:  # short read, reset, timeout, bad file
            last = exc
        log.warning("%s: attempt %d/%d failed: %s", url, attempt, retries, last)
        if attempt < retries:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    unreachable = isinstance(last, (urllib.error.URLError, ConnectionError, TimeoutError))
    err_type = NetworkError if unreachable and not isinstance(last, urllib.error.HTTPError) else DownloadError
    raise err_type(
        f"{url}: download failed after {retries} attempts ({type(last).__name__}: {last}). "
        + _manual_fix(url, dest)
    )


def _fetch(url: str, tmp: Path, timeout_s: float, reporter: Reporter | None, desc: str) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "lensml-download/1"})
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar_cm = reporter(total, desc) if reporter else nullcontext(_NullBar())
        got = 0
        with bar_cm as bar, open(tmp, "wb") as fh:
            while chunk := resp.read(_CHUNK):
                fh.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
        if total is not None and got != total:
            raise http.client.IncompleteRead(b"", total - got)


def download_maps(
    plateifus: Iterable[str],
    out_dir: str | Path = DEFAULT_OUT_DIR,
    base_url: str = DR17_BASE_URL,
    daptype: str = DR17_DAPTYPE,
    timeout_s: float = 20.0,
    retries: int = 3,
    backoff_s: float = 1.0,
    reporter: Reporter | None = None,
) -> tuple[list[Path], list[DownloadError]]:
    """Download the MAPS files of ``plateifus`` into ``out_dir``, skipping verified files already there.

    Returns (paths present, errors). A 4xx for one galaxy does not stop the others; a network failure (no
    host, connection refused after retries) stops the batch at once: the rest would fail the same way.
    """
    out_dir = Path(out_dir)
    if out_dir.is_dir():
        sweep_stale_temps(out_dir)  # transfers of a killed download
    paths: list[Path] = []
    errors: list[DownloadError] = []
    for plateifu in _unique(plateifus):
        dest = out_dir / maps_filename(plateifu, daptype)
        if dest.is_file():
            try:
                verify_maps_file(dest)
                log.info("%s already present; skipped", dest)
                paths.append(dest)
                continue
            except DataError as exc:
                log.warning("%s; downloading it again", exc)
        url = maps_url(plateifu, base_url, daptype)
        try:
            paths.append(download_file(url, dest, timeout_s, retries, backoff_s, reporter, plateifu=plateifu))
        except NetworkError as exc:
            errors.append(exc)
            break
        except DownloadError as exc:
            errors.append(exc)
    return paths, errors


def _unique(items: Iterable[str]) -> Sequence[str]:
    seen: dict[str, None] = {}
    for item in items:
        parse_plateifu(item)
        seen.setdefault(str(item).strip(), None)
    return list(seen)

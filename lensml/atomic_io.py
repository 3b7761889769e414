"""Atomic file writes: write to a temporary name in the same folder, fsync, then ``os.replace``.

A crash never leaves a half-written file under the final name, and a completed write survives a power loss:
the temporary file is flushed and ``fsync``-ed before the rename, the folder ``fsync``-ed after it (best
effort: filesystems that refuse a directory fsync are skipped). Temporary names are this tool's own and say
who wrote them::

    .<final name>.<pid>-<start>@<host>.<8 random chars>.tmp<final suffix>
    e.g. .train_00000.npz.4242-223962@node7.k3x9q1ab.tmp.npz

``<start>`` is the writer's start time (clock ticks since boot, ``/proc/<pid>/stat`` field 22; left out,
with its dash, where there is no ``/proc``). A writer killed outright (SIGKILL, power loss) leaves its
temporary file behind; ``sweep_stale_temps`` removes such leftovers on a later run, and only when no writer
can still hold them: the name must match the pattern above, and

- on this host: the PID is dead, or alive but started at another time (the PID was reused). The file's age
  does not matter: a live writer may take hours (a long shard or checkpoint, a stalled download);
- written on another host (a shared cluster folder): it has not been modified for ``STALE_AGE_S`` seconds.

Files are created with mode ``0o666 & ~umask``, as ``open(path, "w")`` creates them (``tempfile.mkstemp``
would give 0600).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import json
import logging
import os
import re
import secrets
import socket
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: a temporary file of another host untouched for this long (seconds) is stale (writes touch it constantly)
STALE_AGE_S = 6 * 3600.0
_HOST_CHARS = re.compile(r"[^A-Za-z0-9-]")
_ALPHABET = string.ascii_lowercase + string.digits
_TEMP_NAME = re.compile(
    r"^\.(?P<final>.+)\.(?P<pid>\d+)(?:-(?P<start>\d+))?@(?P<host>[A-Za-z0-9-]+)\.[a-z0-9]{8}\.tmp(?P<suffix>.*)$"
)
#: ``tempfile.mkstemp`` names of lensml <= 0.x (no owner in the name): swept by age only
_LEGACY_TEMP_NAME = re.compile(r"^\.(?P<final>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>\.[A-Za-z0-9]+)?$")


def host_tag() -> str:
    """This host's name as it appears in temporary names (characters other than ``[A-Za-z0-9-]`` -> ``-``)."""
    return _HOST_CHARS.sub("-", socket.gethostname()) or "host"


def process_start_ticks(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat``), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])  # field 22; the name in () may hold spaces
    except (OSError, ValueError, IndexError):
        return None


@functools.cache
def _owner_tag(pid: int) -> str:
    start = process_start_ticks(pid)
    return f"{pid}@{host_tag()}" if start is None else f"{pid}-{start}@{host_tag()}"


def temp_name(final_name: str, suffix: str) -> str:
    """A fresh temporary name for ``final_name`` (module docstring) owned by this process."""
    rand = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f".{final_name}.{_owner_tag(os.getpid())}.{rand}.tmp{suffix}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it.

    The temporary name keeps the final suffix so libraries that look at the extension still work. Stale
    temporary files of the same final name left by killed writers are swept first.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(final.parent, final_name=final.name)
    while True:
        tmp_path = final.parent / temp_name(final.name, final.suffix)
        try:  # O_EXCL: never share a name; mode 0o666 is reduced by the umask like any open()
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 36**8 names
            continue
    os.close(fd)
    try:
        yield tmp_path
        _fsync_file(tmp_path)  # the data is on disk before the name points at it
        os.replace(tmp_path, final)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)  # ... and the rename itself survives a power loss


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: errors of filesystems that cannot fsync a directory (the rename is then as durable as they make it)
_DIR_FSYNC_UNSUPPORTED = {
    errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES, errno.EPERM,
}


def _fsync_dir(folder: Path) -> None:
    """fsync a folder so a rename in it is durable; best effort (some filesystems refuse it)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale_temp(path: Path, now: float | None = None, max_age_s: float = STALE_AGE_S) -> bool:
    """True if ``path`` is one of this tool's temporary names and no live writer can hold it (docstring).

    This host's names are decided by the writer's PID and start time only, never by age; other hosts' names
    and those of older lensml versions (``.<name>.<8 chars>.tmp<suffix>``, no owner) by age.
    """
    m = _TEMP_NAME.match(path.name)
    if m is not None and m.group("host") == host_tag():
        pid = int(m.group("pid"))
        if not _pid_alive(pid):
            return True
        start, now_start = m.group("start"), process_start_ticks(pid)
        return start is not None and now_start is not None and int(start) != now_start  # PID reused
    if m is None and _LEGACY_TEMP_NAME.match(path.name) is None:
        return False
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age > max_age_s


def sweep_stale_temps(
    folder: str | os.PathLike[str], final_name: str | None = None, max_age_s: float = STALE_AGE_S
) -> list[Path]:
    """Delete stale temporary files of this tool in ``folder`` (of ``final_name`` only, if given).

    Returns the removed paths. Files of other tools, and temporary files a live writer may hold, are kept.
    """
    folder = Path(folder)
    pattern = f".{glob.escape(final_name)}.*.tmp*" if final_name else ".*.tmp*"
    removed = []
    now = time.time()
    for p in folder.glob(pattern):
        m = _TEMP_NAME.match(p.name) or _LEGACY_TEMP_NAME.match(p.name)
        if m and (final_name is None or m.group("final") == final_name) and is_stale_temp(p, now, max_age_s):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
                log.warning("removed %s: temporary file of a killed writer", p)
    return removed


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> Path:
    """Atomically write ``obj`` as JSON (numpy scalars and arrays are converted)."""
    return write_text(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Atomically save one array as ``.npy``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
    return Path(path)


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    """Atomically save arrays as an uncompressed ``.npz``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return Path(path)


def save_figure(path: str | os.PathLike[str], fig: Any, **kwargs: Any) -> Path:
    """Atomically save a matplotlib figure (format taken from the final suffix)."""
    kwargs.setdefault("format", Path(path).suffix.lstrip(".") or "png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")

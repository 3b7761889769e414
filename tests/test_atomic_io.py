"""The atomic writer: files follow the umask; temporary files of killed writers are swept (real SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lensml.atomic_io import save_npz, write_bytes, write_json


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one is restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    want = 0o666 & ~mask
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what a normal write gives
    assert plain.stat().st_mode & 0o777 == want
    for path in (write_json(tmp_path / "m.json", {"a": 1}), write_bytes(tmp_path / "b.bin", b"x"),
                 save_npz(tmp_path / "s.npz", a=np.arange(3))):
        assert path.stat().st_mode & 0o777 == want, f"{path.name}: {oct(path.stat().st_mode & 0o777)}"


def _killed_mid_write(folder: Path, name: str) -> Path:
    """Run a writer in a subprocess and SIGKILL it while it writes ``folder/name``; return its temp file."""
    script = textwrap.dedent(f"""
        import os, signal
        from lensml.atomic_io import atomic_path
        with atomic_path({str(folder / name)!r}) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"half a shard" * 1000)
                fh.flush()
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = [p for p in folder.iterdir() if p.name != name]
    assert len(left) == 1 and left[0].name.startswith(f".{name}.") and ".tmp" in left[0].name
    assert not (folder / name).exists()
    return left[0]


def test_temp_file_of_a_killed_writer_is_swept_by_the_next_write(tmp_path: Path) -> None:
    stale = _killed_mid_write(tmp_path, "metrics.json")
    write_json(tmp_path / "metrics.json", {"ok": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"], f"{stale.name} left behind"


def test_sweep_removes_only_stale_temp_files_of_this_tool(tmp_path: Path) -> None:
    from lensml.atomic_io import STALE_AGE_S, host_tag, sweep_stale_temps

    dead = _killed_mid_write(tmp_path, "a.npz")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = host_tag()
        keep = {
            f".b.npz.{live.pid}@{host}.abcdefgh.tmp.npz",      # a live writer on this host
            f".c.npz.{os.getpid()}@{host}.abcdefgh.tmp.npz",   # this process
            ".d.npz.1@some-other-node.abcdefgh.tmp.npz",        # another host, recent: may be writing
            ".e.npz.tmp", "notes.tmp.txt", ".f.partial",        # not this tool's pattern
        }
        old_other_host = tmp_path / ".g.npz.1@some-other-node.abcdefgh.tmp.npz"
        for name in [*keep, old_other_host.name]:
            (tmp_path / name).write_bytes(b"x")
        past = time.time() - STALE_AGE_S - 60
        os.utime(old_other_host, (past, past))  # untouched for longer than any write takes
        removed = sweep_stale_temps(tmp_path)
        assert sorted(p.name for p in removed) == sorted([dead.name, old_other_host.name])
        assert {p.name for p in tmp_path.iterdir()} == keep
    finally:
        live.kill()
        live.wait()


def test_a_live_writer_on_this_host_keeps_its_temp_however_old(tmp_path: Path) -> None:
    """A write slower than STALE_AGE_S (a long checkpoint, a stalled download) is not swept from under it."""
    from lensml.atomic_io import STALE_AGE_S, atomic_path, sweep_stale_temps

    final = tmp_path / "last.ckpt"
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"a long write")
        past = time.time() - 2 * STALE_AGE_S
        os.utime(tmp, (past, past))  # untouched for 12 h, but its writer (this process) is alive
        assert sweep_stale_temps(tmp_path) == [] and tmp.exists()
    assert final.read_bytes() == b"a long write"


def test_a_reused_pid_does_not_keep_a_dead_writers_temp(tmp_path: Path) -> None:
    """Same host, PID alive but started at another time than the writer named in the temp: swept."""
    from lensml.atomic_io import host_tag, process_start_ticks, sweep_stale_temps

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = process_start_ticks(live.pid)
        if start is None:
            pytest.skip("no /proc/<pid>/stat: start times unknown")
        host = host_tag()
        own = tmp_path / f".a.npz.{live.pid}-{start}@{host}.abcdefgh.tmp.npz"      # the live writer's
        reused = tmp_path / f".b.npz.{live.pid}-{start + 1}@{host}.abcdefgh.tmp.npz"  # a dead one's
        for p in (own, reused):
            p.write_bytes(b"x")
        assert sweep_stale_temps(tmp_path) == [reused] and own.exists()
    finally:
        live.kill()
        live.wait()


def test_atomic_write_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path: Path, monkeypatch):
    """Power-loss safety: data on disk before the name points at it; a folder that refuses fsync is fine."""
    import errno
    import stat

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        events.append("fsync dir" if is_dir else f"fsync file {os.fstat(fd).st_size}")
        if is_dir:
            raise OSError(errno.EINVAL, "Invalid argument")  # e.g. some network filesystems
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_bytes(tmp_path / "b.bin", b"12345")
    assert events == ["fsync file 5", "replace", "fsync dir"]
    assert (tmp_path / "b.bin").read_bytes() == b"12345"

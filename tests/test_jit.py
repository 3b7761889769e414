"""Kernel compilation settings and cache location (lensml.jit)."""

from __future__ import annotations

from pathlib import Path

import numba

from lensml import jit


def test_every_module_with_kernels_and_what_they_import_is_hashed():
    names = {p.name for p in jit.kernel_sources()}
    kernels = {"jit.py", "simd_math.py", "philox.py", "noise_draws.py", "cpu_rays.py", "cpu_observe.py"}
    imported = {"cpu_terms.py", "grid_terms.py", "disk.py"}  # constants and helpers the kernels read
    assert kernels | imported | {"disk_kernel.py"} <= names
    assert "train.py" not in names and "simulator.py" not in names
    package = Path(jit.__file__).parent
    for path in package.rglob("*.py"):  # any module that compiles with numba goes through lensml.jit
        text = path.read_text(encoding="utf-8")
        if "numba" in text and path.name != "jit.py":
            assert "from lensml.jit import" in text, path


def test_the_cache_folder_changes_with_any_kernel_source(tmp_path, monkeypatch):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    before = jit.source_digest((a, b))
    b.write_text("y = 3\n")  # a helper that another kernel inlines
    assert jit.source_digest((a, b)) != before
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert jit.cache_dir.__wrapped__().parent == tmp_path
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jit.cache_dir.__wrapped__().is_relative_to(tmp_path / "xdg" / "lensml" / "numba")


def test_kernels_are_cached_there_and_numba_settings_are_restored():
    from lensml.sim.philox import philox_block

    assert philox_block._cache._cache_path.startswith(str(jit.cache_dir()))
    assert numba.config.CACHE_DIR != str(jit.cache_dir())

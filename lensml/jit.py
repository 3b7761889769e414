"""Compilation of lensml's CPU kernels with numba: one set of options, and an on-disk cache that is never
stale.

``kernel`` compiles a function once per process, or loads it from the cache. numba keys a cached function on
its own source file only, so a kernel that inlines helpers or reads constants from other modules
(``simd_math``, ``philox``, ``cpu_terms``) would keep its old machine code after those change. lensml's
kernels are therefore cached in a folder named after a hash of every module that uses this file and of
every package module those import (``kernel_sources``): editing any of them compiles afresh. The folder is
``$NUMBA_CACHE_DIR/lensml-<hash>`` when ``NUMBA_CACHE_DIR`` is set, else
``$XDG_CACHE_HOME/lensml/numba/<hash>`` (``~/.cache`` by default); if it cannot be created, numba's own
cache locations are used, and if none is writable the kernels compile in every process (~15 s).

Options: ``nogil`` (kernels release the GIL), ``error_model="numpy"`` (a division by zero gives inf / nan
instead of raising, which also lets LLVM vectorise loops with divisions), no bounds checks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numba

from lensml.digest import source_digest

_PACKAGE = Path(__file__).resolve().parent
_MARKER = "from lensml.jit import"
KERNEL_OPTIONS: dict[str, Any] = dict(nogil=True, error_model="numpy", boundscheck=False)


_IMPORT = re.compile(r"^\s*(?:from|import)\s+(lensml(?:\.\w+)*)", re.MULTILINE)


def _module_file(name: str) -> Path | None:
    """The source file of package module ``name`` (``lensml.a.b``), or None."""
    base = _PACKAGE.parent.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path.resolve()
    return None


@functools.cache
def kernel_sources() -> tuple[Path, ...]:
    """The package modules that define compiled code (they import from this module), this module, and every
    package module they import, directly or not (kernels freeze the globals they read, e.g. constants)."""
    todo = [p.resolve() for p in _PACKAGE.rglob("*.py") if _MARKER in p.read_text(encoding="utf-8")]
    found = {Path(__file__).resolve()}
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found.add(path)
        for name in _IMPORT.findall(path.read_text(encoding="utf-8")):
            module = _module_file(name)
            if module is not None and module not in found:
                todo.append(module)
    return tuple(sorted(found))


@functools.cache
def cache_dir() -> Path:
    """The kernel cache folder of this exact set of kernel sources (see the module docstring)."""
    tag = source_digest(kernel_sources())
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]) / f"lensml-{tag}"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lensml" / "numba" / tag


@contextlib.contextmanager
def _cache_location() -> Iterator[None]:
    """numba's CACHE_DIR pointed at ``cache_dir()`` while a kernel is declared (its locator is fixed then)."""
    previous = numba.config.CACHE_DIR
    try:
        path = cache_dir()
        path.mkdir(parents=True, exist_ok=True)
        numba.config.CACHE_DIR = str(path)
    except (OSError, RuntimeError):  # not writable, or no home folder: numba's default cache locations
        pass
    try:
        yield
    finally:
        numba.config.CACHE_DIR = previous


def kernel(func: Callable | None = None, **options: Any) -> Any:
    """``numba.njit`` with lensml's options and cache; use as ``@kernel`` or ``@kernel(option=...)``."""

    def wrap(f: Callable) -> Any:
        with _cache_location():
            try:
                return numba.njit(cache=True, **{**KERNEL_OPTIONS, **options})(f)
            except RuntimeError:  # no writable cache location at all: compile in every process
                return numba.njit(**{**KERNEL_OPTIONS, **options})(f)

    return wrap(func) if func is not None else wrap


def inline(func: Callable) -> Any:
    """A helper compiled into the kernels that call it (``inline="always"``); also callable from Python."""
    return numba.njit(inline="always", error_model="numpy")(func)

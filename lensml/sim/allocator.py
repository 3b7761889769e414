"""glibc ``malloc`` settings for a process that renders samples: keep freed buffers for reuse.

Each chunk of samples allocates and frees a few MB of buffers (source grids, rendered blocks, noise
scratch). With glibc's default settings, memory freed at the top of the heap is handed back to the OS
(trimmed) and the next chunk page-faults it back in, zero-filled: ~70 page faults per 64 x 64 sample, a
third of its time on the 2-core development machine. ``keep_freed_memory`` raises the mmap and trim
thresholds (``mallopt``) so that freed buffers stay in the process; its memory stays at the peak of its
working set instead of going up and down. ``build_simulator`` calls it once per process; set
``LENSML_KEEP_FREED_MEMORY=0`` to leave malloc alone. Elsewhere than Linux with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

log = logging.getLogger(__name__)

#: mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Allocations below this come from the heap, not from their own mmap (glibc's dynamic maximum is 32 MiB).
MMAP_THRESHOLD_BYTES = 64 * 2**20
#: Free memory at the top of the heap beyond this is returned to the OS.
TRIM_THRESHOLD_BYTES = 512 * 2**20
OPT_OUT_ENV = "LENSML_KEEP_FREED_MEMORY"


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap / trim thresholds once per process; True if applied (see the module docstring)."""
    if os.environ.get(OPT_OUT_ENV, "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    log.debug("mallopt mmap %d, trim %d bytes: %s", MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES, ok)
    return ok

"""Content digests of source files (what a cached result or compiled kernel was made from)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def source_digest(paths: tuple[Path, ...]) -> str:
    """A short hash (16 hex characters) of the names and contents of ``paths``."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]

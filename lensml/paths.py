"""Where things live: the project root, ``conf/`` and the shared data folder beside the project."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = PROJECT_ROOT / "conf"

#: Environment variable that points at the shared data folder (default: ``../shared`` beside the project).
SHARED_ENV = "LENSML_SHARED"


def shared_dir() -> Path:
    """The shared data folder: ``$LENSML_SHARED`` if set, else ``<project root>/../shared``."""
    env = os.environ.get(SHARED_ENV)
    return Path(env).expanduser().resolve() if env else (PROJECT_ROOT.parent / "shared").resolve()


def shared_manga_dir() -> Path:
    """Folder of the real MaNGA MAPS file(s) shipped beside the project (``<shared>/data/manga``)."""
    return shared_dir() / "data" / "manga"

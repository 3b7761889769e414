"""Shared behaviour of the ``python -m lensml.<name>`` entry points."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from lensml.errors import LensmlError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("lensml")


def clean_errors(fn: F) -> F:
    """Turn a ``LensmlError`` (bad config value, bad file) into one clear line on stderr and exit code 2.

    Put it *under* ``@hydra.main`` so Hydra's own traceback printing never sees the expected errors;
    unexpected exceptions still show their full traceback. A non-zero ``int`` returned by ``fn`` becomes the
    process's exit code (the batch CLIs return 1 when some files failed); other return values (e.g. the
    validation AUC that Hydra sweepers read) are passed through.

    The error (and the traceback of an unexpected exception) is also written to the run's log files (Hydra's
    ``<run dir>/<name>.log``), so a failed start leaves its reason beside the ``.hydra/`` it created.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except LensmlError as exc:
            log.debug("lensml error", exc_info=True)
            to_log_files(f"lensml: error: {exc}")
            print(f"\nlensml: error: {exc}", file=sys.stderr)
            sys.exit(2)
        except Exception as exc:
            to_log_files(f"unexpected error: {type(exc).__name__}: {exc}", exc_info=True)
            raise
        if type(result) is int and result != 0:
            sys.exit(result)
        return result

    return wrapper  # type: ignore[return-value]


def to_log_files(message: str, exc_info: bool = False) -> None:
    """Write an ERROR record to the file handlers of the root logger only (the console shows its own line)."""
    info = sys.exc_info() if exc_info else None
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), info)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)

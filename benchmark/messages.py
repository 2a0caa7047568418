"""The harness's warnings: what it repaired or discarded (a corrupt record set aside, a checkpoint
that could not be resumed), one stderr line each, through the ``prunebench`` logger."""

from __future__ import annotations

import logging
import sys

LOGGER = "prunebench"


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a warning comes (a test runner swaps it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def say_warnings() -> None:
    """Print the harness's warnings as ``warning: ...`` lines on stderr (once per process)."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)

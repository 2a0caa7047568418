"""What the harness tells the person at the terminal besides its results, through two loggers:
``prunebench`` (warnings: what it repaired or discarded, a corrupt record set aside, a checkpoint
that could not be resumed) and ``prunebench.levels`` (one line per finished level). Silent in a
library unless the command line, or the caller, turns them on."""

from __future__ import annotations

import logging
import sys

LOGGER = "prunebench"
LEVELS = "prunebench.levels"


class _Stderr(logging.Handler):
    """One line on whatever sys.stderr is when it comes (a test runner swaps it), above a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - a message must never break a run
            self.handleError(record)


def _say(name: str, level: int, fmt: str) -> None:
    logger = logging.getLogger(name)
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter(fmt))
        handler.setLevel(level)  # a child's records reach this handler too, whatever this logger's level
        logger.addHandler(handler)
        logger.setLevel(level)


def say_warnings() -> None:
    """Print the harness's warnings as ``warning: ...`` lines on stderr (once per process)."""
    _say(LOGGER, logging.WARNING, "warning: %(message)s")


def say_levels() -> None:
    """Print a line per finished level (method, seed, level, density, test accuracy, seconds)."""
    _say(LEVELS, logging.INFO, "%(message)s")

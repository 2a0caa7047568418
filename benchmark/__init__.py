"""prunebench: a reproducibility benchmark harness for neural-network pruning.

For notebooks and scripts: ``from prunebench import run_suite, load_results`` (see prunebench.app).
Importing the package itself is cheap: these names are loaded on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["execute_suite", "load_results", "run_suite", "suite_results"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from prunebench import app

        return getattr(app, name)
    raise AttributeError(f"module 'prunebench' has no attribute {name!r}")

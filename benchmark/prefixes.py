"""Shared prefixes on disk: the state a run reached at the end of a train, under its lineage key, for
the other runs that reach the same key (prunebench.lineage) to start from instead of training it.

A file holds what a train changes (weights, BN, optimizer state, masks, the run's counters) and the
epoch rows of the train it ends, so a run that loads it writes the records it would have written
itself. It lives in ``RESULTS/prefixes/<key>-<context>.pt``; the context hashes what makes the last
bits differ between machines (torch, device, threads, step-loop settings), so a run only ever starts
from a prefix computed the way it would have computed it. Written atomically; a file that cannot be
read is ignored with a warning and the run trains the prefix itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from prunebench.messages import LOGGER
from prunebench.store import atomic_torch_save

log = logging.getLogger(LOGGER)
FORMAT = 1


class PrefixStore:
    """The shared prefixes of one results directory, for runs executing in one ``context``."""

    def __init__(self, root: Path, context: dict[str, Any]) -> None:
        self.root = root
        self.context = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode()).hexdigest()[:8]

    def path(self, key: str) -> Path:
        return self.root / f"{key}-{self.context}.pt"

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def load(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if state.get("format") != FORMAT or state.get("key") != key:
                raise ValueError("not a prefix of this version and key")
            return state
        except Exception as e:  # noqa: BLE001 - a damaged file only costs the training it would have saved
            log.warning("shared prefix %s is unreadable (%s: %s); this run trains it itself", path, type(e).__name__, e)
            return None

    def save(self, key: str, state: dict[str, Any]) -> None:
        atomic_torch_save(self.path(key), {"format": FORMAT, "key": key, **state})

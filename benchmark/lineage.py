"""A run's lineage: what has been done to its state since initialisation, written canonically, so
that runs whose states must be equal bit for bit at some point have equal lineage keys there.

This is what prefix sharing keys on (docs/architecture.md, "Prefix sharing"): the dense level 0 that
dense, IMP, LRR and every ablation of one seed train, or the prune-at-init and cycles that SCULPT's
target densities repeat, names one state, whichever method reached it. The key hashes the run's base
protocol (data, model, training, prunable selection, seed: not the method) and the operations that
changed the state, with what they depend on (an operation's number where it keys randomness, a
producer's run id where it reads another run). A level trained in segments (IMP's ``[0, rewind)``
and ``[rewind, end)``) reads as one train: contiguous trains on one data order without mask updates
merge. Both Sessions that run methods (the trainer and the dry run's planner) call the same methods
here, so the planner knows which keys several runs reach.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from prunebench.spec import PROTOCOL_VERSION, RunSpec

StepRange = tuple[int, int]  # steps [first, last) of one epoch row of a level


def epoch_rows(first: int, last: int, steps_per_epoch: int) -> list[StepRange]:
    """The step ranges of the epoch rows that training steps [first, last) writes: one per epoch touched."""
    rows, step = [], first
    while step < last:
        end = min(last, (step // steps_per_epoch + 1) * steps_per_epoch)
        rows.append((step, end))
        step = end
    return rows


def base_protocol(spec: RunSpec) -> dict[str, Any]:
    """What shapes a run's training whatever its method does: its state starts from this alone."""
    prunable = spec.prune.prunable if spec.prune is not None else None
    fields = {"data": spec.data, "model": spec.model, "train": spec.train, "prunable": prunable}
    return {"protocol_version": PROTOCOL_VERSION, "seed": spec.seed,
            **{k: v.model_dump(mode="json", exclude_defaults=True) for k, v in fields.items() if v is not None}}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:16]


class Lineage:
    """The state-changing operations of a run so far; ``key()`` names the state they led to."""

    def __init__(self, spec: RunSpec) -> None:
        self.run_id = spec.run_id
        self.base = _digest(base_protocol(spec))
        self.producers = dict(spec.producers)
        self.ops: list[list[Any]] = []
        self.snapshots: dict[str, str] = {}  # snapshot name -> the key of the state it holds
        self._scores_op: int | None = None  # the operation whose scores the next prune may use

    def key(self, ops: Sequence[Any] | None = None) -> str:
        return _digest([self.base, self.ops if ops is None else ops])

    # ---- training
    def merges(self, first: int, data_level: int, updates: Any) -> bool:
        """Whether a train of steps from ``first`` continues the last operation (one level in segments)."""
        last = self.ops[-1] if self.ops else None
        return updates is None and last is not None and last[0] == "train" and last[2] == first and last[3:] == [data_level, None]

    def after_train(self, first: int, last: int, data_level: int, level: int, updates: Any) -> list[list[Any]]:
        """The operations after training steps [first, last) of the level's schedule."""
        if self.merges(first, data_level, updates):
            return [*self.ops[:-1], ["train", self.ops[-1][1], last, data_level, None]]
        described = None if updates is None else {"level": level, "updates": repr(updates)}
        return [*self.ops, ["train", first, last, data_level, described]]

    def train(self, first: int, last: int, data_level: int, level: int, updates: Any) -> None:
        self.ops = self.after_train(first, last, data_level, level, updates)

    # ---- everything else that changes the state
    def score(self, op: int, scorer: str, options: Mapping[str, Any]) -> None:
        """A score (its randomness and data keyed by the operation; ``mask_of`` reads a producer)."""
        self.ops.append(["score", op, scorer, dict(options), self.producers])
        self._scores_op = op

    def prune(self, from_score: bool, density: float | None, remove: float | None, allocation: str) -> None:
        """A prune by the last score's scores, or by scores the method made itself (shared with no other run)."""
        source = self._scores_op if from_score else f"scores of run {self.run_id}"
        self.ops.append(["prune", source, density, remove, allocation])

    def append(self, kind: str, *args: Any) -> None:
        """revive, reset_optimizer, set_signs, flip_signs: the operation and what it depends on."""
        self.ops.append([kind, *args])

    def snapshot(self, name: str) -> None:
        self.snapshots[name] = self.key()

    def restore(self, name: str, what: Sequence[str]) -> None:
        self.ops.append(["restore", self.snapshots.get(name, f"snapshot {name} of run {self.run_id}"), sorted(what)])

    # ---- checkpoints
    def state(self) -> dict[str, Any]:
        return {"ops": self.ops, "snapshots": self.snapshots, "scores_op": self._scores_op}

    def load(self, state: Mapping[str, Any] | None) -> None:
        """From a checkpoint; one written before lineages were kept shares nothing from here on."""
        if state is None:
            self.ops, self.snapshots = [["unknown", self.run_id]], {}
            return
        self.ops, self.snapshots, self._scores_op = list(state["ops"]), dict(state["snapshots"]), state["scores_op"]

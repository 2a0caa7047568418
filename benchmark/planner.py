"""The dry run: a method script run against a Session that counts what it would train.

``PlanSession`` answers every call of prunebench.api.Session with the same signature; training is
counted, not done; scores are empty, evaluations NaN. It keeps the run's lineage as the training
Session does (same operation numbers), so the plan knows the state each train ends in and which of
them several runs reach (``share_prefixes``). ``plan_training`` gives a run's epochs and levels from
the data registry's sizes, without loading any data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from prunebench.api import MaskUpdates, Restorable, SignSource, get_method
from prunebench.data import train_size
from prunebench.data.loader import steps_per_epoch
from prunebench.lineage import Lineage, StepRange, epoch_rows
from prunebench.masks import Scores
from prunebench.records import LevelRecord
from prunebench.spec import Point, RunSpec, WeightPoint, level_steps, points_in


@dataclass(frozen=True)
class TrainStep:
    """One ``train`` of a run: the lineage key of the state it ends in, its epochs, the epoch rows it
    writes and those of the whole lineage train it ends (what a run sharing its end state can copy)."""

    key: str
    epochs: float
    rows: tuple[StepRange, ...]
    lineage_rows: frozenset[StepRange]
    loadable: bool = True  # False: the run keeps its weights at a point inside it, so it trains it (and may still write it)


class PlanSession:
    """prunebench.api.Session without training: counts the steps each ``train`` would run."""

    def __init__(self, spec: RunSpec, steps_per_epoch: int) -> None:
        self.spec = spec
        self._steps_per_epoch = steps_per_epoch
        self.total_steps = spec.train.epochs * steps_per_epoch
        self.steps_trained = 0
        self.levels: list[LevelRecord] = []
        self.target_density = 1.0
        self.lineage = Lineage(spec)
        self.trains: list[TrainStep] = []
        self.level = self.data_level = 0
        self._next_op = 0
        self._lineage_rows: list[StepRange] = []
        self._last_scores: Scores | None = None
        self._snapshot_data_levels: dict[str, int] = {}

    def _op(self) -> int:
        """Counted as the training Session counts its operations (their numbers key randomness)."""
        self._next_op += 1
        return self._next_op - 1

    @property
    def steps_per_epoch(self) -> int:
        return self._steps_per_epoch

    @property
    def epochs_trained(self) -> float:
        return self.steps_trained / self.steps_per_epoch

    def steps(self, point: Point | str | None, default: int) -> int:
        return level_steps(point, default, self.steps_per_epoch, self.total_steps)

    def train(self, start: Point | str | None = None, stop: Point | str | None = None,
              updates: MaskUpdates | None = None) -> None:
        self._op()
        first, last = self.steps(start, 0), self.steps(stop, self.total_steps)
        if first > last:
            raise ValueError(f"a training segment from {start} to {stop} runs backwards")
        if updates is not None:
            for point in (updates.begin, updates.end, None if isinstance(updates.every, int) else updates.every):
                self.steps(point, 0)
        self.steps_trained += last - first
        rows = epoch_rows(first, last, self.steps_per_epoch)
        if not self.lineage.merges(first, self.data_level, updates):
            self._lineage_rows = []
        self._lineage_rows += rows
        self.lineage.train(first, last, self.data_level, self.level, updates)
        kept = [self.steps(p.at, 0) for p in points_in(self.spec.keep_weights, self.level)]
        self.trains.append(TrainStep(self.lineage.key(), (last - first) / self.steps_per_epoch, tuple(rows),
                                     frozenset(self._lineage_rows), loadable=not any(first < k < last for k in kept)))

    def prune(self, scores: Scores, *, density: float | None = None, remove: float | None = None,
              allocation: str | None = None) -> None:
        self._op()
        self.target_density = density if density is not None else self.target_density * (1.0 - remove)
        self.lineage.prune(scores is self._last_scores, density, remove, allocation or self.spec.prune.allocation)
        self._last_scores = None

    def record(self, level: int, **extra: Any) -> None:
        self._op()
        self.levels.append(LevelRecord(level=level, target_density=self.target_density, density=self.target_density,
                                       sparsity=1.0 - self.target_density, test_accuracy=math.nan,
                                       epochs_trained=self.epochs_trained))
        self.level = self.data_level = level + 1

    def score(self, scorer: str | None = None, **options: Any) -> Scores:
        self.lineage.score(self._op(), scorer or self.spec.prune.scorer, options)
        self._last_scores = {}
        return self._last_scores

    def evaluate(self) -> dict[str, float]:
        self._op()
        return {"accuracy": math.nan, "loss": math.nan}

    def rng(self, tag: str) -> torch.Generator:
        return torch.Generator().manual_seed(0)

    def snapshot(self, name: str) -> None:
        self._op()
        self.lineage.snapshot(name)
        self._snapshot_data_levels[name] = self.data_level

    def restore(self, name: str, what: Sequence[Restorable]) -> None:
        self._op()
        if "data_order" in what:
            self.data_level = self._snapshot_data_levels.get(name, self.data_level)
        self.lineage.restore(name, what)

    def reset_optimizer(self) -> None:
        self._op()
        self.lineage.append("reset_optimizer")

    def revive(self) -> None:
        self._op()
        self.target_density = 1.0
        self.lineage.append("revive")

    def set_signs(self, source: SignSource, level: int | None = None) -> None:
        self._op()
        if source != "keep":
            self.lineage.append("set_signs", source, self.level if level is None else level, self.lineage.snapshots.get("rewind"))

    def flip_signs(self, fraction: float, exact: bool = True) -> None:
        op = self._op()
        if fraction:
            self.lineage.append("flip_signs", op, fraction, exact)

    def load_weights(self, at: WeightPoint, signs_only: bool = False) -> None:
        self._op()
        self.lineage.append("load_weights", self.lineage.producers.get("weights"), str(at), signs_only)


@dataclass(frozen=True)
class Plan:
    """What a run trains: its epochs (all levels) and its levels."""

    epochs: float
    levels: int
    trains: tuple[TrainStep, ...] = ()


def plan_training(spec: RunSpec) -> Plan:
    """Run the method script against a PlanSession (a standalone method plans no epochs)."""
    if spec.train is None:
        return Plan(0.0, 0)
    steps = max(steps_per_epoch(train_size(spec.data), spec.train.batch_size, spec.train.drop_last), 1)
    plan = PlanSession(spec, steps)
    method = get_method(spec.method)
    method().run(plan, method.Params.model_validate(spec.params))
    return Plan(plan.epochs_trained, len(plan.levels), tuple(plan.trains))


@dataclass(frozen=True)
class Sharing:
    """Prefix sharing over runs executed in order: the keys more than one run reaches (the states
    worth writing) and the epochs each run starts from instead of training."""

    keys: frozenset[str]
    saved: dict[str, float]  # run id -> the epochs it does not train

    @property
    def epochs_saved(self) -> float:
        return sum(self.saved.values())


def share_prefixes(runs: Mapping[str, Sequence[TrainStep]]) -> Sharing:
    """Which train ends several of ``runs`` (run id -> its trains, in execution order) reach, and what
    executing them in this order saves: a train is skipped when an earlier run wrote its end state
    with the epoch rows it would write (the training Session applies the same rule)."""
    reached: dict[str, int] = {}
    for trains in runs.values():
        for key in {t.key for t in trains}:
            reached[key] = reached.get(key, 0) + 1
    keys = frozenset(k for k, n in reached.items() if n > 1)
    written: dict[str, frozenset[StepRange]] = {}
    saved: dict[str, float] = {}
    for run_id, trains in runs.items():
        for t in trains:
            if t.loadable and t.key in written and set(t.rows) <= written[t.key]:
                saved[run_id] = saved.get(run_id, 0.0) + t.epochs
            elif t.key in keys and t.key not in written:
                written[t.key] = t.lineage_rows
    return Sharing(keys, saved)

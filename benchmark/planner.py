"""The dry run: a method script run against a Session that counts what it would train.

``PlanSession`` answers every call of prunebench.api.Session with the same signature; training is
counted, not done; scores are empty, evaluations NaN. ``plan_training`` gives a run's epochs and levels
from the data registry's sizes, without loading any data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from prunebench.api import MaskUpdates, Restorable, SignSource, get_method
from prunebench.data import train_size
from prunebench.data.loader import steps_per_epoch
from prunebench.masks import Scores
from prunebench.records import LevelRecord
from prunebench.spec import Point, RunSpec, level_steps


class PlanSession:
    """prunebench.api.Session without training: counts the steps each ``train`` would run."""

    def __init__(self, spec: RunSpec, steps_per_epoch: int) -> None:
        self.spec = spec
        self._steps_per_epoch = steps_per_epoch
        self.total_steps = spec.train.epochs * steps_per_epoch
        self.steps_trained = 0
        self.levels: list[LevelRecord] = []
        self.target_density = 1.0

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
        first, last = self.steps(start, 0), self.steps(stop, self.total_steps)
        if first > last:
            raise ValueError(f"a training segment from {start} to {stop} runs backwards")
        if updates is not None:
            for point in (updates.begin, updates.end, None if isinstance(updates.every, int) else updates.every):
                self.steps(point, 0)
        self.steps_trained += last - first

    def prune(self, scores: Scores, *, density: float | None = None, remove: float | None = None,
              allocation: str | None = None) -> None:
        self.target_density = density if density is not None else self.target_density * (1.0 - remove)

    def record(self, level: int, **extra: Any) -> None:
        self.levels.append(LevelRecord(level=level, target_density=self.target_density, density=self.target_density,
                                       sparsity=1.0 - self.target_density, test_accuracy=math.nan,
                                       epochs_trained=self.epochs_trained))

    def score(self, scorer: str | None = None, **options: Any) -> Scores:
        return {}

    def evaluate(self) -> dict[str, float]:
        return {"accuracy": math.nan, "loss": math.nan}

    def rng(self, tag: str) -> torch.Generator:
        return torch.Generator().manual_seed(0)

    def snapshot(self, name: str) -> None: ...
    def restore(self, name: str, what: Sequence[Restorable]) -> None: ...
    def reset_optimizer(self) -> None: ...
    def revive(self) -> None:
        self.target_density = 1.0
    def set_signs(self, source: SignSource, level: int | None = None) -> None: ...
    def flip_signs(self, fraction: float, exact: bool = True) -> None: ...


@dataclass(frozen=True)
class Plan:
    """What a run trains: its epochs (all levels) and its levels."""

    epochs: float
    levels: int


def plan_training(spec: RunSpec) -> Plan:
    """Run the method script against a PlanSession (a standalone method plans no epochs)."""
    if spec.train is None:
        return Plan(0.0, 0)
    steps = max(steps_per_epoch(train_size(spec.data), spec.train.batch_size, spec.train.drop_last), 1)
    plan = PlanSession(spec, steps)
    method = get_method(spec.method)
    method().run(plan, method.Params.model_validate(spec.params))
    return Plan(plan.epochs_trained, len(plan.levels))

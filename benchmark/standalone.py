"""The Session of a standalone method: a closed toy experiment (the single hidden neuron) that
brings its own model and data. It has the run's seed, keyed randomness and level records in the
common schema; the operations that need a model, data or a trainer say so. No checkpoints: such
runs take seconds and restart from scratch if killed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import torch

from prunebench.api import MaskUpdates, Restorable, SignSource
from prunebench.masks import Scores
from prunebench.records import LevelRecord
from prunebench.seeds import derive_seed
from prunebench.session import Recorder
from prunebench.spec import Point, RunSpec, WeightPoint


class StandaloneSession:
    """prunebench.api.Session for methods with ``standalone = True``."""

    def __init__(self, spec: RunSpec, recorder: Recorder) -> None:
        self.spec = spec
        self.recorder = recorder
        self.levels: list[LevelRecord] = []
        self._epochs = 0.0

    @property
    def epochs_trained(self) -> float:
        return self._epochs

    @property
    def steps_per_epoch(self) -> int:
        return 1

    def rng(self, tag: str) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.spec.seed, "standalone", tag))

    def record(self, level: int, *, density: float, accuracy: float, epochs: float, **extra: Any) -> None:
        """A level row in the common schema: ``accuracy`` is what the leaderboard ranks by."""
        self._epochs = epochs
        row = LevelRecord(level=level, target_density=density, density=density, sparsity=1.0 - density,
                          test_accuracy=accuracy, epochs_trained=epochs, **extra)
        self.levels.append(row)
        self.recorder.append_metrics(row.model_dump(mode="json", exclude_none=True))

    def _no_model(self, operation: str) -> NoReturn:
        raise TypeError(f"Session.{operation} needs the suite's model, data and trainer; a standalone method "
                        f"({self.spec.method!r}) trains its own")

    def steps(self, point: Point | str | None, default: int) -> int:
        self._no_model("steps")

    def train(self, start: Point | str | None = None, stop: Point | str | None = None,
              updates: MaskUpdates | None = None) -> None:
        self._no_model("train")

    def revive(self) -> None:
        self._no_model("revive")

    def reset_optimizer(self) -> None:
        self._no_model("reset_optimizer")

    def snapshot(self, name: str) -> None:
        self._no_model("snapshot")

    def restore(self, name: str, what: Sequence[Restorable]) -> None:
        self._no_model("restore")

    def score(self, scorer: str | None = None, **options: Any) -> Scores:
        self._no_model("score")

    def prune(self, scores: Scores, *, density: float | None = None, remove: float | None = None,
              allocation: str | None = None) -> None:
        self._no_model("prune")

    def set_signs(self, source: SignSource, level: int | None = None) -> None:
        self._no_model("set_signs")

    def flip_signs(self, fraction: float, exact: bool = True) -> None:
        self._no_model("flip_signs")

    def load_weights(self, at: WeightPoint, signs_only: bool = False) -> None:
        self._no_model("load_weights")

    def evaluate(self) -> dict[str, float]:
        self._no_model("evaluate")

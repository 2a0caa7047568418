"""The pruning API, as a method's author sees it: Method, MethodParams, Scorer and the Session protocol.

A method is a short script over a Session and reads like the paper's pseudocode::

    @register_method("lrr")
    class LRR(Method):
        class Params(MethodParams):
            levels: int = 5
            fraction: float = 0.2
        def run(self, s: Session, p: Params) -> None:
            s.train()
            s.record(0)
            for level in range(1, p.levels + 1):
                s.prune(s.score("magnitude"), remove=p.fraction)
                s.train()
                s.record(level)

The Session owns the model, masks, optimizer, data, randomness, snapshots and the run's records;
a method never touches files or devices. Three sessions implement the protocol below: the one that
trains (``prunebench.session.TrainingSession``), the one that only counts what would be trained
(``prunebench.planner.PlanSession``, for ``--dry-run``) and the one of toy experiments that bring
their own model (``prunebench.standalone.StandaloneSession``). Methods import only this module,
``prunebench.spec`` (Point) and the shared steps of ``prunebench.methods.common``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from prunebench.masks import Masks, Scores
from prunebench.registry import Registry, UnknownName
from prunebench.spec import Point, RunSpec, WeightPoint

__all__ = [
    "METHODS", "RESTORABLE", "SCORERS", "DropGrow", "GradualPrune", "MaskUpdates", "Method", "MethodParams",
    "ProducerRecords", "Restorable", "ScoreContext", "Scorer", "Session", "SignSource", "UnknownName", "get_method",
    "get_scorer", "method_names", "register_method", "register_scorer", "scorer_names",
]

Restorable = Literal["weights", "bn_affine", "bn_stats", "optimizer", "data_order"]
SignSource = Literal["keep", "init", "rewind", "producer"]
RESTORABLE: tuple[str, ...] = ("weights", "bn_affine", "bn_stats", "optimizer", "data_order")


class MethodParams(BaseModel):
    """Base of a method's typed parameters; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Method:
    """A pruning method. Subclasses set ``Params`` and implement ``run``."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[MethodParams]] = MethodParams
    prunes: ClassVar[bool] = True  # needs a non-empty prunable set
    standalone: ClassVar[bool] = False  # trains its own toy model: gets a StandaloneSession, no data/model/train
    # "every": each recorded level is a result (IMP's pruned networks); "last": only a run's last level is,
    # the earlier ones are its way there (cyclic training's cycles, SCULPT-ing's cycles before its prune)
    result_levels: ClassVar[Literal["every", "last"]] = "every"

    def run(self, s: Session, p: Any) -> None:
        raise NotImplementedError

    @classmethod
    def weights_read(cls, p: Any) -> list[WeightPoint]:
        """The points of the ``weights`` producer whose kept state a run of ``p`` loads (the suite
        checks that the producer keeps them)."""
        return []


class ProducerRecords(Protocol):
    """Another run's level records, read-only (prunebench.store.RunRecords implements it)."""

    def masks(self, level: int) -> Masks: ...
    def signs(self, level: int) -> dict[str, torch.Tensor]: ...
    def weights(self, point: WeightPoint) -> dict[str, torch.Tensor]: ...


@dataclass(frozen=True)
class ScoreContext:
    """What a scorer may read. Scorers return a score per prunable tensor; higher means keep."""

    model: nn.Module
    params: Mapping[str, nn.Parameter]
    masks: Masks
    batches: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # n examples -> batches
    generator: torch.Generator
    num_classes: int
    level: int = 0  # the level the scores will prune for
    producers: Mapping[str, ProducerRecords] = field(default_factory=dict)  # role -> another run's records


Scorer = Callable[..., Scores]  # (ctx: ScoreContext, **options) -> Scores


# ------------------------------------------------------------------- mask updates during training
@dataclass(frozen=True)
class DropGrow:
    """A drop-and-grow update at a fixed density (SET, RigL). In every prunable tensor, drop the
    floor(f * kept) active weights of smallest magnitude and grow as many inactive ones: at random
    (``grow="random"``, SET) or those of largest dense-gradient magnitude at the update step
    (``grow="gradient"``, RigL); f is ``drop_fraction``, constant or cosine-annealed to zero at
    the updates' end. Each tensor keeps exactly its count; grown weights start at zero with zero
    optimizer state (RigL's code: a weight dropped and regrown in one update keeps its value; SET's
    re-initialises it)."""

    grow: Literal["random", "gradient"]
    drop_fraction: float = 0.3
    anneal: Literal["constant", "cosine"] = "cosine"


@dataclass(frozen=True)
class GradualPrune:
    """Gradual magnitude pruning (Zhu & Gupta 2017): at each update, prune (nested) with ``scorer`` and
    ``allocation`` (default: the suite's) to the cubic schedule's density, from ``initial_density``
    at the first update to ``final_density`` at the last."""

    initial_density: float
    final_density: float
    scorer: str = "magnitude"
    allocation: str | None = None


@dataclass(frozen=True)
class MaskUpdates:
    """Update the masks with ``rule`` after the optimizer steps ``begin``, ``begin + every``, ... up to
    ``end`` (inclusive; points of the level's schedule; default: the segment's last step)."""

    rule: DropGrow | GradualPrune
    every: Point | str | int  # an int counts optimizer steps
    begin: Point | str = "0it"
    end: Point | str | None = None


@runtime_checkable
class Session(Protocol):
    """What a method script may call. Every call is an operation of the run's journal (see
    prunebench.session): a resumed run replays the script, and finished operations return at once."""

    spec: RunSpec

    @property
    def steps_per_epoch(self) -> int: ...
    @property
    def epochs_trained(self) -> float: ...

    def steps(self, point: Point | str | None, default: int) -> int:
        """A point of the level's schedule in optimizer steps (``default`` when None)."""
    def train(self, start: Point | str | None = None, stop: Point | str | None = None,
              updates: MaskUpdates | None = None) -> None:
        """Train steps [start, stop) of the level's schedule (default: the whole schedule), with the
        mask ``updates`` at their steps."""
    def reset_optimizer(self) -> None:
        """Fresh optimizer state (momentum buffers) for the following training."""
    def snapshot(self, name: str) -> None:
        """Save everything a later restore may name."""
    def restore(self, name: str, what: Sequence[Restorable]) -> None:
        """Restore the named parts of snapshot ``name``; the masks stay as they are."""
    def score(self, scorer: str | None = None, **options: Any) -> Scores:
        """Scores per prunable tensor from a registered scorer (default: the suite's)."""
    def prune(self, scores: Scores, *, density: float | None = None, remove: float | None = None,
              allocation: str | None = None) -> None:
        """Prune to ``density`` of all prunable weights, or remove a fraction of the remaining ones."""
    def revive(self) -> None:
        """Unprune every weight (a dense phase): revived weights start at zero with zero optimizer state."""
    def set_signs(self, source: SignSource, level: int | None = None) -> None:
        """|w| * sign of ``source`` ("init", "rewind": the "rewind" snapshot, "producer") for every
        prunable weight; "keep": nothing."""
    def flip_signs(self, fraction: float, exact: bool = True) -> None:
        """Flip the signs of exactly round(fraction * n) of the n unpruned weights of every layer, or
        (``exact=False``) of each unpruned weight with probability ``fraction``."""
    def load_weights(self, at: WeightPoint, signs_only: bool = False) -> None:
        """The model state the ``weights`` producer kept at ``at`` (weights, BN affine and statistics),
        or with ``signs_only`` |w| * the sign of its prunable weights there; the masks stay as they are."""
    def evaluate(self) -> dict[str, float]:
        """Test accuracy and loss now (journaled: a resumed script sees the same values)."""
    def rng(self, tag: str) -> torch.Generator:
        """A generator keyed by the run's seed, the operation and ``tag``."""
    def record(self, level: int, **extra: Any) -> None:
        """End of a level: its row (with ``extra``), its mask and signs, a checkpoint."""


# ------------------------------------------------------------------------------------ registries
METHODS: Registry[type[Method]] = Registry("method", builtins=("prunebench.methods.*",))
SCORERS: Registry[Scorer] = Registry("scorer", builtins=("prunebench.scorers",))


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        return METHODS.add(name, cls)

    return deco


def register_scorer(name: str) -> Callable[[Scorer], Scorer]:
    return SCORERS.register(name)


def method_names() -> list[str]:
    return METHODS.names()


def scorer_names() -> list[str]:
    return SCORERS.names()


def get_method(name: str) -> type[Method]:
    return METHODS.get(name)


def get_scorer(name: str) -> Scorer:
    return SCORERS.get(name)

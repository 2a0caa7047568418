"""Cyclic training and SCULPT-ing ("PaI is getting competitive by training longer", arXiv 2406.02773).

Cyclic training trains one fixed mask (pruned at initialisation with the suite's scorer, or dense,
or another run's mask of one level: ``mask_level`` with ``mask_of`` and ``from: {masks: lrr}``) for
several cycles, from this run's initialisation, from the weights another run kept at a point (``weights_from``
with ``from: {weights: lrr}``: LRR's mask with its warm-up weights) or with their signs on this run's
magnitudes (``signs_from``), each one full run of the per-cycle learning-rate schedule (cosine, step or
triangular), momentum carried across cycles by default; every cycle is recorded as a level.

Two knobs say how the cycles are budgeted, as the same lab's TurboPrune harness can:
``keep_momentum`` (false: a fresh optimizer before every cycle, TurboPrune's way) and ``budget``.
``budget: per_cycle`` (the default) trains every cycle on the suite's full ``train.epochs`` (E)
schedule, so k cycles train k * E epochs; ``budget: split`` makes E the whole budget: suite
expansion gives the run ``train.epochs = E / k`` (``Cyclic.resolve_train``; E must be divisible by
k), so every cycle is a fresh, complete schedule of E / k epochs and the run trains E epochs
(TurboPrune's default "constant" strategy: epochs_per_level // num_cycles per cycle).

SCULPT-ing prunes at initialisation to a low sparsity (e.g. 20/50/70%) with the suite's scorer,
trains cyclically, prunes once by global magnitude (the paper's criterion; ``prune_scorer`` and
``prune_allocation`` choose another) to the target density and trains one more cycle.
Each level row carries the cumulative epoch budget (``epochs_trained``) beside its accuracy.
``budget: split`` divides ``train.epochs`` over all its cycles + 1 cycles.
"""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from prunebench.api import Method, MethodParams, Session, UnknownName, get_scorer, register_method
from prunebench.methods.common import prune_in_rounds
from prunebench.spec import TrainSpec, WeightPoint

Budget = Literal["per_cycle", "split"]
BUDGET_HELP = ("per_cycle: every cycle trains the full train.epochs schedule; split: train.epochs is the whole budget, "
               "every cycle a fresh complete schedule of train.epochs / cycles epochs (set at suite expansion)")


def cycle_train(train: TrainSpec, budget: Budget, cycles: int, counted: str = "") -> TrainSpec:
    """The training spec of one cycle: the suite's (``per_cycle``), or its ``train.epochs`` E split
    evenly over the run's ``cycles`` cycles (``split``): a schedule of E / cycles epochs. The split
    schedule has the suite's shape (triangular, cosine, ... are fractions of the cycle); a schedule
    written in absolute epochs (warm-up, milestones) is refused, as it would not scale with it.
    ``counted`` says how the cycles are counted, for the error message."""
    if budget == "per_cycle":
        return train
    if train.epochs % cycles:
        below, above = train.epochs // cycles * cycles, -(-train.epochs // cycles) * cycles
        near = " or ".join(str(e) for e in dict.fromkeys((below, above)) if e > 0)
        raise ValueError(f"budget: split divides train.epochs ({train.epochs}) evenly over the run's {cycles} cycles{counted}, "
                         f"but {train.epochs} is not a multiple of {cycles}: give train.epochs {near}, "
                         "or another number of cycles")
    if train.schedule.warmup_epochs or train.schedule.milestones:
        raise ValueError("budget: split shortens each cycle's schedule to train.epochs / cycles epochs, but "
                         "schedule.warmup_epochs / schedule.milestones are absolute epochs of one schedule; "
                         "write the per-cycle schedule (train.epochs per cycle) with budget: per_cycle instead")
    return train.model_copy(update={"epochs": train.epochs // cycles})


def train_cycles(s: Session, cycles: int, keep_momentum: bool, first_level: int = 0) -> None:
    """``cycles`` replays of the whole schedule on the current mask, each recorded as a level."""
    for cycle in range(cycles):
        if cycle and not keep_momentum:
            s.reset_optimizer()
        s.train()
        s.record(first_level + cycle)


@register_method("cyclic")
class Cyclic(Method):
    result_levels = "last"

    class Params(MethodParams):
        density: float = Field(1.0, gt=0, le=1, description="prune at init to this density first (1: dense)")
        rounds: int | None = Field(None, ge=1, description="pruning rounds at init (default: 100 for synflow, else 1)")
        cycles: int = Field(4, ge=1)
        keep_momentum: bool = True
        mask_level: int | None = Field(None, ge=0, description="with scorer mask_of: the producer's level whose mask "
                                                                "to train (e.g. LRR's mask, on a fresh initialisation)")
        budget: Budget = Field("per_cycle", description=BUDGET_HELP)
        weights_from: WeightPoint | None = Field(None, description="start from the state the `weights` producer kept "
                                                 "there (its warm-up weights: the paper's 'warmup initialisation')")
        signs_from: WeightPoint | None = Field(None, description="keep this run's initial magnitudes, with the signs "
                                               "of the `weights` producer's weights there")

        @model_validator(mode="after")
        def _one_start(self):
            if self.weights_from is not None and self.signs_from is not None:
                raise ValueError("weights_from and signs_from both say where the weights start: give one")
            if any(point is not None and point.level == "every" for point in (self.weights_from, self.signs_from)):
                raise ValueError("weights_from / signs_from name one level of the producer, not every")
            return self

    @classmethod
    def resolve_train(cls, p: Params, train: TrainSpec) -> TrainSpec:
        """Suite expansion's hook: the ``train`` a run of ``p`` trains every cycle with."""
        return cycle_train(train, p.budget, p.cycles)

    @classmethod
    def weights_read(cls, p: Params) -> list[WeightPoint]:
        return [point for point in (p.weights_from, p.signs_from) if point is not None]

    def run(self, s: Session, p: Params) -> None:
        if p.weights_from is not None or p.signs_from is not None:
            s.load_weights(p.weights_from or p.signs_from, signs_only=p.signs_from is not None)
        if p.mask_level is not None:
            if s.spec.prune.scorer != "mask_of":
                raise ValueError("mask_level needs `prune: {scorer: mask_of}` and `from: {masks: LABEL}`")
            s.prune(s.score(level=p.mask_level), density=p.density)
        elif p.density < 1:
            prune_in_rounds(s, p.density, p.rounds)
        train_cycles(s, p.cycles, p.keep_momentum)


@register_method("sculpt")
class Sculpt(Method):
    result_levels = "last"

    class Params(MethodParams):
        init_density: float = Field(0.8, gt=0, le=1, description="density after pruning at init (0.8: 20% sparse)")
        density: float = Field(gt=0, le=1, description="the target density of the final magnitude prune")
        cycles: int = Field(3, ge=1, description="cycles before the magnitude prune (one more follows it)")
        rounds: int | None = Field(None, ge=1)
        keep_momentum: bool = True
        prune_scorer: str = Field("magnitude", description="the criterion of the one-shot prune after the cycles")
        prune_allocation: str = Field("global", description="its allocation across layers")
        budget: Budget = Field("per_cycle", description=BUDGET_HELP + "; the cycles are all cycles + 1 of the run")

        @field_validator("prune_scorer")
        @classmethod
        def _known_scorer(cls, name: str) -> str:
            try:
                get_scorer(name)
            except UnknownName as e:
                raise ValueError(str(e)) from None
            return name

        @model_validator(mode="after")
        def _target_below_init(self):
            if self.density >= self.init_density:
                raise ValueError(f"density {self.density} must lie below init_density {self.init_density}: "
                                 "the magnitude prune goes from the init sparsity to the (higher) target")
            return self

    @classmethod
    def resolve_train(cls, p: Params, train: TrainSpec) -> TrainSpec:
        """Suite expansion's hook; ``split`` divides train.epochs over every cycle of the run, the one
        after the magnitude prune included (4 + 1 cycles of a 150-epoch budget: 30 epochs each)."""
        return cycle_train(train, p.budget, p.cycles + 1, f" ({p.cycles} before the magnitude prune, 1 after)")

    def run(self, s: Session, p: Params) -> None:
        prune_in_rounds(s, p.init_density, p.rounds)
        train_cycles(s, p.cycles, p.keep_momentum)
        s.prune(s.score(p.prune_scorer), density=p.density, allocation=p.prune_allocation)
        train_cycles(s, 1, p.keep_momentum, first_level=p.cycles)

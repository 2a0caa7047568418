"""Cyclic training and SCULPT-ing ("PaI is getting competitive by training longer", arXiv 2406.02773).

Cyclic training trains one fixed mask (pruned at initialisation with the suite's scorer, or dense,
or another run's mask of one level: ``mask_level`` with ``mask_of`` and ``from: {masks: lrr}``) for
several cycles, each one full run of the per-cycle learning-rate schedule (cosine, step or
triangular), momentum carried across cycles by default; every cycle is recorded as a level.

SCULPT-ing prunes at initialisation to a low sparsity (e.g. 20/50/70%) with the suite's scorer,
trains cyclically, prunes once by global magnitude (the paper's criterion; ``prune_scorer`` and
``prune_allocation`` choose another) to the target density and trains one more cycle.
Each level row carries the cumulative epoch budget (``epochs_trained``) beside its accuracy.
"""

from pydantic import Field, field_validator, model_validator

from prunebench.api import Method, MethodParams, Session, UnknownName, get_scorer, register_method
from prunebench.methods.common import prune_in_rounds


def train_cycles(s: Session, cycles: int, keep_momentum: bool, first_level: int = 0) -> None:
    """``cycles`` replays of the whole schedule on the current mask, each recorded as a level."""
    for cycle in range(cycles):
        if cycle and not keep_momentum:
            s.reset_optimizer()
        s.train()
        s.record(first_level + cycle)


@register_method("cyclic")
class Cyclic(Method):
    class Params(MethodParams):
        density: float = Field(1.0, gt=0, le=1, description="prune at init to this density first (1: dense)")
        rounds: int | None = Field(None, ge=1, description="pruning rounds at init (default: 100 for synflow, else 1)")
        cycles: int = Field(4, ge=1)
        keep_momentum: bool = True
        mask_level: int | None = Field(None, ge=0, description="with scorer mask_of: the producer's level whose mask "
                                                                "to train (e.g. LRR's mask, on a fresh initialisation)")

    def run(self, s: Session, p: Params) -> None:
        if p.mask_level is not None:
            if s.spec.prune.scorer != "mask_of":
                raise ValueError("mask_level needs `prune: {scorer: mask_of}` and `from: {masks: LABEL}`")
            s.prune(s.score(level=p.mask_level), density=p.density)
        elif p.density < 1:
            prune_in_rounds(s, p.density, p.rounds)
        train_cycles(s, p.cycles, p.keep_momentum)


@register_method("sculpt")
class Sculpt(Method):
    class Params(MethodParams):
        init_density: float = Field(0.8, gt=0, le=1, description="density after pruning at init (0.8: 20% sparse)")
        density: float = Field(gt=0, le=1, description="the target density of the final magnitude prune")
        cycles: int = Field(3, ge=1, description="cycles before the magnitude prune (one more follows it)")
        rounds: int | None = Field(None, ge=1)
        keep_momentum: bool = True
        prune_scorer: str = Field("magnitude", description="the criterion of the one-shot prune after the cycles")
        prune_allocation: str = Field("global", description="its allocation across layers")

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

    def run(self, s: Session, p: Params) -> None:
        prune_in_rounds(s, p.init_density, p.rounds)
        train_cycles(s, p.cycles, p.keep_momentum)
        s.prune(s.score(p.prune_scorer), density=p.density, allocation=p.prune_allocation)
        train_cycles(s, 1, p.keep_momentum, first_level=p.cycles)

"""Steps that several methods share, written once: iterative density schedules with the sign
ablations of Gadhikar & Burkholz 2024, retraining with a sign perturbation, and pruning in rounds."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from prunebench.api import MethodParams, Session, SignSource
from prunebench.spec import Point


class IterativeParams(MethodParams):
    """Parameters of a method that prunes over several levels: a fraction per level or explicit targets,
    and the sign ablations of Gadhikar & Burkholz 2024 applied after every prune."""

    levels: int = Field(5, ge=1)
    fraction: float = Field(0.2, gt=0, lt=1)  # of the remaining weights, per level
    # explicit density of each level after the first (overrides the two above)
    densities: list[Annotated[float, Field(gt=0, le=1)]] | None = None
    signs: SignSource = "keep"  # "init": |w| * sign(w at init); "rewind": at the rewind point; "producer": of the signs producer
    flip_signs: float = Field(0.0, ge=0, le=1)  # sign perturbation: this fraction of unpruned weights per layer...
    flip_at: Point | None = None  # ...at this point of the level's schedule (default: right after the prune)...
    flip_levels: list[Annotated[int, Field(ge=0)]] | None = None  # ...in these levels (default: every level after the first)
    # exactly round(p * n) weights of every layer, or each unpruned weight with probability p (the authors' code)
    flip_mode: Literal["exact", "bernoulli"] = "exact"
    # epochs: flip before epochs N-1, 2N-1, ... counted from the end of the warm-up (the authors' ``epoch % N == N - 1``
    # in the epochs of a level after their one warm-up; their defaults p = 0.3, N = 30) instead of once
    flip_every: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_flip_schedule(self) -> IterativeParams:
        if self.flip_every is not None and self.flip_at is not None:
            raise ValueError("flip_every and flip_at both say when signs flip: give one")
        return self

    def flips_in(self, level: int) -> float:
        """The sign-flip probability or fraction of ``level`` (0: no perturbation)."""
        chosen = level >= 1 if self.flip_levels is None else level in self.flip_levels
        return self.flip_signs if chosen else 0.0

    def level_densities(self) -> list[float]:
        """Target density (fraction of prunable weights kept) of levels 1, 2, ..."""
        if self.densities is not None:
            return list(self.densities)
        return [(1.0 - self.fraction) ** k for k in range(1, self.levels + 1)]


def retrain(s: Session, p: IterativeParams, level: int, start: Point) -> None:
    """Train level ``level`` from ``start`` of its schedule, with the sign perturbation the
    parameters ask for (Gadhikar & Burkholz 2024): flip ``flip_signs`` of the unpruned weights of
    every layer at ``flip_at``, every ``flip_every`` epochs, or before training, in the levels
    ``flip_levels`` (or every level after the first)."""
    fraction = p.flips_in(level)
    if level == 0 and not fraction:  # level 0 had no flip operation before: recorded runs replay unchanged
        s.train(start=start)
        return
    at = start
    for flip in flip_points(s, p, start, fraction):
        if s.steps(flip, 0) > s.steps(at, 0):
            s.train(start=at, stop=flip)
        s.flip_signs(fraction, exact=p.flip_mode == "exact")
        at = flip
    s.train(start=at)


def flip_points(s: Session, p: IterativeParams, start: Point, fraction: float) -> list[Point]:
    """Where a level trained from ``start`` flips signs: before epochs N-1, 2N-1, ... after the warm-up
    (``flip_every``; none when it flips nothing), at ``flip_at``, or else once before training (even at
    fraction 0: recorded runs keep that operation)."""
    if p.flip_every is not None:
        warmup, epochs = s.spec.train.schedule.warmup_epochs, s.spec.train.epochs
        points = [Point(epoch=warmup + e) for e in range(p.flip_every - 1, epochs, p.flip_every) if warmup + e < epochs]
        return [f for f in points if s.steps(f, 0) >= s.steps(start, 0)] if fraction else []
    if p.flip_at is None:
        return [start]
    if s.steps(p.flip_at, 0) < s.steps(start, 0):
        raise ValueError(f"flip_at {p.flip_at} lies before the level's training starts ({start})")
    return [p.flip_at]


# Pruning rounds a scorer is iterated for when a method is not told (Tanaka et al. 2020: 100 for SynFlow).
DEFAULT_ROUNDS = {"synflow": 100}


def prune_in_rounds(s: Session, density: float, rounds: int | None = None, **options: Any) -> None:
    """Score and prune ``rounds`` times along density^(k / rounds), k = 1..rounds (the SynFlow
    paper's prune loop; one round is one-shot pruning). Each round is an ordinary Session score and
    prune, so masks are exact and nested under any allocation."""
    rounds = rounds or DEFAULT_ROUNDS.get(s.spec.prune.scorer, 1)
    for k in range(1, rounds + 1):
        s.prune(s.score(**options), density=density ** (k / rounds))

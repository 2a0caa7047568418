"""Steps that several methods share, written once: iterative density schedules with the sign
ablations of Gadhikar & Burkholz 2024, retraining with a sign perturbation, and pruning in rounds."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from prunebench.api import MethodParams, Session, SignSource
from prunebench.spec import Point


class IterativeParams(MethodParams):
    """Parameters of a method that prunes over several levels: a fraction per level or explicit targets,
    and the sign ablations of Gadhikar & Burkholz 2024 applied after every prune."""

    levels: int = Field(5, ge=1)
    fraction: float = Field(0.2, gt=0, lt=1)  # of the remaining weights, per level
    # explicit density of each level after the first (overrides the two above)
    densities: list[Annotated[float, Field(gt=0, le=1)]] | None = None
    signs: SignSource = "keep"  # "init": |w| * sign(w at init); "producer": |w| * sign(w of the signs producer)
    flip_signs: float = Field(0.0, ge=0, le=1)  # sign perturbation: this fraction of unpruned weights per layer...
    flip_at: Point | None = None  # ...at this point of the level's schedule (default: right after the prune)...
    flip_levels: list[Annotated[int, Field(ge=0)]] | None = None  # ...in these levels (default: every level after the first)

    def level_densities(self) -> list[float]:
        """Target density (fraction of prunable weights kept) of levels 1, 2, ..."""
        if self.densities is not None:
            return list(self.densities)
        return [(1.0 - self.fraction) ** k for k in range(1, self.levels + 1)]


def retrain(s: Session, p: IterativeParams, level: int, start: Point) -> None:
    """Train pruned level ``level`` from ``start`` of its schedule, with the sign perturbation the
    parameters ask for (Gadhikar & Burkholz 2024): flip ``flip_signs`` of the unpruned weights of
    every layer at ``flip_at`` (or before training) in the levels ``flip_levels`` (or all)."""
    fraction = p.flip_signs if p.flip_levels is None or level in p.flip_levels else 0.0
    if p.flip_at is None:
        s.flip_signs(fraction)
        s.train(start=start)
        return
    if s.steps(p.flip_at, 0) < s.steps(start, 0):
        raise ValueError(f"flip_at {p.flip_at} lies before the level's training starts ({start})")
    s.train(start=start, stop=p.flip_at)
    s.flip_signs(fraction)
    s.train(start=p.flip_at)


# Pruning rounds a scorer is iterated for when a method is not told (Tanaka et al. 2020: 100 for SynFlow).
DEFAULT_ROUNDS = {"synflow": 100}


def prune_in_rounds(s: Session, density: float, rounds: int | None = None, **options: Any) -> None:
    """Score and prune ``rounds`` times along density^(k / rounds), k = 1..rounds (the SynFlow
    paper's prune loop; one round is one-shot pruning). Each round is an ordinary Session score and
    prune, so masks are exact and nested under any allocation."""
    rounds = rounds or DEFAULT_ROUNDS.get(s.spec.prune.scorer, 1)
    for k in range(1, rounds + 1):
        s.prune(s.score(**options), density=density ** (k / rounds))

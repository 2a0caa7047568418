"""Sparsity schedules of training-time pruning, as pure functions of the step (like schedules.py
for the learning rate): a step's density, drop fraction or phase depends on nothing but the step.

- ``update_steps``: the steps a mask update runs at (RigL's ``is_mask_update_iter``: begin,
  begin + every, ... up to and including end).
- ``cubic_density``: gradual magnitude pruning (Zhu & Gupta 2017), sparsity
  s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3 for t0 <= t <= t0 + n dt.
- ``drop_fraction``: RigL's drop fraction, constant or cosine-decayed (TF ``cosine_decay`` of the
  global step over end - begin steps, as the RigL code computes it).
- ``acdc_phase``: AC/DC's alternation (Peste et al. 2021): dense warm-up, then sparse and dense
  phases of fixed lengths, then a sparse fine-tuning to the end.
"""

from __future__ import annotations

import math
from typing import Literal


def is_update_step(step: int, begin: int, end: int, every: int) -> bool:
    """Whether a mask update runs after optimizer step ``step`` (0-based)."""
    return begin <= step <= end and (step - begin) % every == 0


def update_steps(begin: int, end: int, every: int) -> list[int]:
    return list(range(begin, end + 1, every))


def cubic_density(step: int, initial: float, final: float, begin: int, end: int) -> float:
    """The density (1 - sparsity) at ``step`` of Zhu & Gupta's cubic schedule from ``begin`` to ``end``:
    the initial density before, the final one after, s_f + (s_i - s_f) (1 - progress)^3 between."""
    s_i, s_f = 1.0 - initial, 1.0 - final
    if step <= begin:
        return initial
    if step >= end:
        return final
    progress = (step - begin) / (end - begin)
    return 1.0 - (s_f + (s_i - s_f) * (1.0 - progress) ** 3)


def drop_fraction(step: int, initial: float, begin: int, end: int, anneal: Literal["constant", "cosine"]) -> float:
    """RigL's drop fraction at ``step``: constant, or ``initial`` * (1 + cos(pi * min(t, T) / T)) / 2 with
    T = end - begin and t the step itself (tf.compat.v1.train.cosine_decay of the global step)."""
    if anneal == "constant":
        return initial
    horizon = max(end - begin, 1)
    return initial * 0.5 * (1.0 + math.cos(math.pi * min(step, horizon) / horizon))


def acdc_phase(step: int, warmup: int, sparse: int, dense: int, finetune_from: int) -> Literal["dense", "sparse"]:
    """AC/DC's phase of ``step``: dense before ``warmup``; then a sparse phase of ``sparse`` steps and a
    dense one of ``dense`` steps, repeated; sparse from ``finetune_from`` to the end."""
    if step < warmup:
        return "dense"
    if step >= finetune_from:
        return "sparse"
    return "sparse" if (step - warmup) % (sparse + dense) < sparse else "dense"


def acdc_phases(total: int, warmup: int, sparse: int, dense: int, finetune_from: int) -> list[tuple[str, int, int]]:
    """The phases of ``acdc_phase`` over steps [0, total) as (phase, first step, end step), in order."""
    if min(sparse, dense) < 1 or not 0 <= warmup <= finetune_from <= total:
        raise ValueError(f"AC/DC phases need sparse, dense >= 1 step and 0 <= warmup <= finetune <= total, got "
                         f"{warmup=}, {sparse=}, {dense=}, {finetune_from=}, {total=}")
    bounds = sorted({0, warmup, finetune_from, total, *range(warmup, finetune_from, sparse + dense),
                     *range(warmup + sparse, finetune_from, sparse + dense)})
    phases: list[tuple[str, int, int]] = []
    for first, stop in zip(bounds, bounds[1:]):
        phase = acdc_phase(first, warmup, sparse, dense, finetune_from)
        if phases and phases[-1][0] == phase:
            phases[-1] = (phase, phases[-1][1], stop)
        else:
            phases.append((phase, first, stop))
    return phases

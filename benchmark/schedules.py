"""Learning-rate schedules as pure functions of the position in a level's schedule.

A level of training is one schedule of ``total_steps`` optimizer steps. The learning rate at any
step is a pure function of that step (never of how many times the optimizer was stepped before),
so training a segment ``[start, stop)`` of the schedule, resuming mid-level, or replaying the whole
schedule again (learning-rate rewinding) all see exactly the same learning rates.

``unit: epoch`` evaluates the schedule at the epoch index (the rate changes once per epoch, as in
the LRR paper's code); ``unit: step`` evaluates it at every optimizer step.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prunebench.spec import ScheduleSpec


def learning_rate(spec: ScheduleSpec, base_lr: float, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The learning rate at optimizer step ``step`` (0-based) of a level of ``epochs`` epochs."""
    if spec.unit == "epoch":
        t, total, per_epoch = step // steps_per_epoch, epochs, 1
    else:
        t, total, per_epoch = step, epochs * steps_per_epoch, steps_per_epoch
    warmup = round(spec.warmup_epochs * per_epoch)
    if t < warmup:
        # Linear warmup reaching base_lr at the end of the warmup (lr * (t + 1) / W, as in the LRR code).
        return base_lr * (t + 1) / warmup
    return _after_warmup(spec, base_lr, t, total, warmup, per_epoch)


def _after_warmup(spec: ScheduleSpec, base_lr: float, t: int, total: int, warmup: int, per_epoch: int) -> float:
    floor = spec.min_lr
    if spec.name == "constant":
        return base_lr
    if spec.name == "multistep":
        drops = sum(1 for m in spec.milestones if t >= round(m * per_epoch))
        return base_lr * spec.gamma**drops
    # Shapes defined over the part of the level after the warmup.
    span = max(total - warmup, 1)
    x = (t - warmup) / span  # in [0, 1)
    if spec.name == "cosine":
        return floor + 0.5 * (1.0 + math.cos(math.pi * x)) * (base_lr - floor)
    if spec.name == "linear":
        return floor + (1.0 - x) * (base_lr - floor)
    if spec.name == "triangular":
        # Rises linearly from start_fraction * base_lr to base_lr over the first peak_at of the
        # level, then falls linearly to min_lr at the end of the level.
        if x < spec.peak_at:
            return base_lr * (spec.start_fraction + (1.0 - spec.start_fraction) * x / spec.peak_at)
        return floor + (base_lr - floor) * (1.0 - x) / (1.0 - spec.peak_at)
    raise ValueError(f"unknown schedule {spec.name!r}")

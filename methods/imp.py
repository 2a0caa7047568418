"""Iterative magnitude pruning with weight rewinding.

Frankle & Carbin 2019 ("The Lottery Ticket Hypothesis"; rewind to initialisation, ``rewind: 0ep``)
and Frankle et al. 2020 ("Linear Mode Connectivity and the LTH"; rewind to an early point of
training, e.g. ``rewind: 500it`` or the end of warmup ``rewind: 10ep``). After every prune the
parts named in ``restore`` return to their values at the rewind point and training resumes from
that point of the schedule. The scorer is the suite's (magnitude by default; ``random`` gives the
iterative-random-pruning ablation, ``mask_of`` with ``from: {masks: lrr}`` IMP on LRR's masks).
``signs: producer`` with ``from: {signs: lrr}`` rewinds to |w_rewind| * sign(w_LRR at that level).
OpenLTH's rewinding (Frankle et al. 2020's code) is ``restore: [weights, bn_affine, bn_stats,
data_order]`` with ``fresh_optimizer: true``: a new optimizer, no momentum, at the rewind point.
"""

from pydantic import model_validator

from prunebench.api import Method, Restorable, Session, register_method
from prunebench.methods.common import IterativeParams, retrain
from prunebench.spec import Point


@register_method("imp")
class IMP(Method):
    class Params(IterativeParams):
        rewind: Point = Point(epoch=0)
        restore: tuple[Restorable, ...] = ("weights", "bn_affine", "optimizer")
        fresh_optimizer: bool = False  # a new optimizer (zero momentum) after each rewind

        @model_validator(mode="after")
        def _one_optimizer_rule(self) -> "IMP.Params":
            if self.fresh_optimizer and "optimizer" in self.restore:
                raise ValueError("fresh_optimizer and restore: [optimizer] say two things of the optimizer: give one")
            return self

    def run(self, s: Session, p: Params) -> None:
        s.train(stop=p.rewind)
        s.snapshot("rewind")
        retrain(s, p, 0, start=p.rewind)  # the authors' periodic flips act on level 0 too (flip_levels: [0, ...])
        s.record(0)
        for level, density in enumerate(p.level_densities(), start=1):
            s.prune(s.score(), density=density)
            s.restore("rewind", what=p.restore)
            if p.fresh_optimizer:
                s.reset_optimizer()
            s.set_signs(p.signs)
            retrain(s, p, level, start=p.rewind)  # with the sign perturbation, if any
            s.record(level)

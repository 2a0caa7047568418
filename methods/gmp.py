"""Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune").

Train from the dense (or ``initial_density``) network and, after every ``every`` optimizer steps
from ``begin`` to ``end``, prune by magnitude (nested: a pruned weight stays pruned) to the density
of the cubic schedule s_t = s_f + (s_i - s_f)(1 - (t - t0) / (n dt))^3, globally or per layer (the
suite's allocation, or ``allocation``); then train on to the end of the level. One level.
"""

from pydantic import Field

from prunebench.api import GradualPrune, MaskUpdates, Method, MethodParams, Session, register_method
from prunebench.spec import Point


@register_method("gmp")
class GMP(Method):
    class Params(MethodParams):
        density: float = Field(gt=0, le=1, description="final density (fraction of prunable weights kept)")
        initial_density: float = Field(1.0, gt=0, le=1)
        begin: Point = Point(step=0)
        end: Point  # the last update (the RigL code's pruning end_step: 75% of training)
        every: Point = Point(step=1000)
        allocation: str | None = None  # global or layerwise; default: the suite's

    def run(self, s: Session, p: Params) -> None:
        prune = GradualPrune(p.initial_density, p.density, allocation=p.allocation)
        s.train(updates=MaskUpdates(prune, every=p.every, begin=p.begin, end=p.end))
        s.record(0)

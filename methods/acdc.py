"""AC/DC: alternating compressed / decompressed training (Peste et al. 2021).

Dense warm-up until ``warmup``; then sparse phases of ``sparse`` and dense phases of ``dense``
alternate: a sparse phase starts with a magnitude prune of the whole network to ``density`` (the
suite's allocation; the authors' code prunes globally), a dense phase revives every weight at zero
(with zero momentum); from ``finetune`` to the end the network stays sparse. One level.
"""

from pydantic import Field

from prunebench.api import Method, MethodParams, Session, register_method
from prunebench.sparsity import acdc_phases
from prunebench.spec import Point


@register_method("acdc")
class ACDC(Method):
    class Params(MethodParams):
        density: float = Field(gt=0, le=1, description="density of the sparse phases")
        warmup: Point = Point(epoch=10)
        sparse: Point = Point(epoch=20)
        dense: Point = Point(epoch=13)
        finetune: Point  # start of the final sparse phase

    def run(self, s: Session, p: Params) -> None:
        total = s.steps(None, s.spec.train.epochs * s.steps_per_epoch)
        phases = acdc_phases(total, s.steps(p.warmup, 0), s.steps(p.sparse, 0), s.steps(p.dense, 0), s.steps(p.finetune, 0))
        for phase, start, stop in phases:
            if phase == "sparse":
                s.prune(s.score("magnitude"), density=p.density)
            elif start > 0:
                s.revive()
            s.train(start=Point(step=start), stop=Point(step=stop))
        s.record(0)

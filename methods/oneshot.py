"""One-shot pruning of a trained network, then retraining.

Train the dense network (level 0), prune once to ``density`` with the suite's scorer (magnitude by
default), then either rewind to ``rewind`` and train from there (one-shot lottery ticket), or, with
``rewind`` unset, keep the trained weights and replay the schedule (one-shot LRR / retraining).
"""

from pydantic import Field

from prunebench.api import Method, MethodParams, Restorable, Session, register_method
from prunebench.spec import Point


@register_method("oneshot_magnitude")
class OneShot(Method):
    class Params(MethodParams):
        density: float = Field(gt=0, le=1)
        rewind: Point | None = None
        restore: tuple[Restorable, ...] = ("weights", "bn_affine", "optimizer")

    def run(self, s: Session, p: Params) -> None:
        start = p.rewind or Point(epoch=0)
        s.train(stop=start)
        s.snapshot("rewind")
        s.train(start=start)
        s.record(0)
        s.prune(s.score(), density=p.density)
        if p.rewind is not None:
            s.restore("rewind", what=p.restore)
        s.train(start=start)
        s.record(1)

"""Dynamic sparse training at a fixed density: SET (Mocanu et al. 2018) and RigL (Evci et al. 2020).

Start from a random mask at ``density`` under the suite's allocation (ERK or layerwise-uniform),
then every ``every`` steps until ``end`` (default: 75% of training) drop in every layer the active
weights of smallest magnitude, a fraction of them annealed by cosine from ``drop_fraction``, and
grow as many: at random (SET) or those of largest dense gradient at that step (RigL). Grown weights
start at zero with zero momentum. One level; a "2x" budget is a suite entry training twice as long.
"""

from typing import ClassVar, Literal

from pydantic import Field

from prunebench.api import DropGrow, MaskUpdates, Method, MethodParams, Session, register_method
from prunebench.spec import Point


class DynamicSparse(Method):
    grow: ClassVar[Literal["random", "gradient"]]

    class Params(MethodParams):
        density: float = Field(gt=0, le=1, description="fraction of prunable weights kept throughout")
        every: Point = Point(step=100)
        end: Point | None = None  # the last update; default: end_fraction of the level's steps
        end_fraction: float = Field(0.75, gt=0, le=1)
        drop_fraction: float = Field(0.3, ge=0, le=1)
        anneal: Literal["constant", "cosine"] = "cosine"

    def run(self, s: Session, p: Params) -> None:
        s.prune(s.score("random"), density=p.density)  # random sparse initialisation, the suite's allocation
        end = p.end or Point(step=round(p.end_fraction * s.spec.train.epochs * s.steps_per_epoch) - 1)
        s.train(updates=MaskUpdates(DropGrow(self.grow, p.drop_fraction, p.anneal), every=p.every, end=end))
        s.record(0)


@register_method("set")
class SET(DynamicSparse):
    grow = "random"


@register_method("rigl")
class RigL(DynamicSparse):
    grow = "gradient"

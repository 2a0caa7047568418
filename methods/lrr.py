"""Learning rate rewinding.

Renda, Frankle & Carbin 2020 ("Comparing Rewinding and Fine-tuning"): after every prune keep the
trained weights and replay the learning-rate schedule from epoch T - t (``retrain_from``).
Gadhikar & Burkholz 2024 ("Masks, Signs, and Learning Rate Rewinding"): replay the whole schedule
(``retrain_from: 0ep``, the default) with the momentum buffers carried over (``keep_momentum``).
Their ablations are options: ``restore: [bn_affine, bn_stats, optimizer]`` with ``rewind: 10ep``
(LRR with BN rewinding), ``signs: init`` (signs reset to the initial ones; ``signs: rewind`` to those
at the rewind point, the authors' post-warm-up "initial" signs), ``flip_signs: p``
(sign perturbation; ``flip_at`` and ``flip_levels`` choose when), ``mask_of`` scorer with ``from: {masks: imp}`` (LRR on IMP's masks).
"""

from prunebench.api import Method, Restorable, Session, register_method
from prunebench.methods.common import IterativeParams, retrain
from prunebench.spec import Point


@register_method("lrr")
class LRR(Method):
    class Params(IterativeParams):
        retrain_from: Point = Point(epoch=0)
        keep_momentum: bool = True
        rewind: Point = Point(epoch=0)  # where the parts named in ``restore`` are saved
        restore: tuple[Restorable, ...] = ()

    def run(self, s: Session, p: Params) -> None:
        s.train(stop=p.rewind)
        if p.restore or p.signs == "rewind":
            s.snapshot("rewind")
        retrain(s, p, 0, start=p.rewind)  # the authors' periodic flips act on level 0 too (flip_levels: [0, ...])
        s.record(0)
        for level, density in enumerate(p.level_densities(), start=1):
            s.prune(s.score(), density=density)
            if p.restore:
                s.restore("rewind", what=p.restore)
            if not p.keep_momentum:
                s.reset_optimizer()
            s.set_signs(p.signs)
            retrain(s, p, level, start=p.retrain_from)  # with the sign perturbation, if any
            s.record(level)

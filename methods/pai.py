"""Pruning at initialisation: prune the freshly initialised network, then train the fixed mask.

The SynFlow paper's protocol (Tanaka et al. 2020) for every scorer of the suite's ``prune:`` block
(random, magnitude, snip, grasp, synflow): score and prune before any training, in ``rounds`` rounds
along the exponential schedule density^(k / rounds), k = 1..rounds, as the authors' ``prune_loop``
does. One round for the one-shot scorers, 100 for SynFlow, whose scores change as weights go (its
iteration is what avoids layer collapse). Each round is an ordinary score and prune of the Session,
so masks stay nested and exact under any allocation rule. Then one level of training.

Records: level 0 is the pruned network after training (like every method's level rows); the
untrained pruned network's test accuracy and loss ride along in that row as ``init_test_accuracy``
and ``init_test_loss`` (a collapsed mask shows there as chance accuracy before any training).
"""

from pydantic import Field

from prunebench.api import Method, MethodParams, Session, register_method
from prunebench.methods.common import prune_in_rounds


@register_method("pai")
class PaI(Method):
    class Params(MethodParams):
        density: float = Field(gt=0, le=1, description="fraction of prunable weights kept")
        rounds: int | None = Field(None, ge=1, description="pruning rounds (default: 100 for synflow, else 1)")
        examples: int | None = Field(None, ge=1, description="snip/grasp: training examples scored (default 10 per class)")

    def run(self, s: Session, p: Params) -> None:
        prune_in_rounds(s, p.density, p.rounds, **({"examples": p.examples} if p.examples else {}))
        untrained = s.evaluate()
        s.train()
        s.record(0, **{f"init_test_{key}": value for key, value in untrained.items()})

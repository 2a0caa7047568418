"""The dense baseline: one level of the protocol, nothing pruned."""

from prunebench.api import Method, MethodParams, Session, register_method


@register_method("dense")
class Dense(Method):
    prunes = False

    def run(self, s: Session, p: MethodParams) -> None:
        s.train()
        s.record(0)

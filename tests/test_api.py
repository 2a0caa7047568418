"""The author-facing contract: the three sessions implement the whole Session protocol, with the
protocol's parameter names, so a method script runs against any of them."""

from __future__ import annotations

import inspect

import pytest

from prunebench.api import Session
from prunebench.planner import PlanSession
from prunebench.session import TrainingSession
from prunebench.standalone import StandaloneSession

SESSIONS = (TrainingSession, PlanSession, StandaloneSession)


def protocol_members() -> dict[str, object]:
    return {name: getattr(Session, name) for name in dir(Session)
            if not name.startswith("_") and name not in dir(object)} | {"spec": None}


def public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


@pytest.mark.parametrize("cls", SESSIONS, ids=lambda c: c.__name__)
def test_every_session_implements_every_operation_of_the_protocol(cls):
    members = protocol_members()
    instance_attributes = {"spec"}  # set in __init__
    missing = sorted(set(members) - public(cls) - instance_attributes)
    assert not missing, f"{cls.__name__} lacks {missing}"
    for name, member in members.items():
        if not callable(member) or isinstance(member, property):
            continue
        wanted = list(inspect.signature(member).parameters)
        have = list(inspect.signature(getattr(cls, name)).parameters)
        assert have[: len(wanted)] == wanted or set(wanted) <= set(have), f"{cls.__name__}.{name}{tuple(have)} != {tuple(wanted)}"


def test_an_operation_one_session_has_is_in_the_protocol():
    """What a method may call is the protocol: no session offers an operation the others lack."""
    internal = {"trainer", "model", "prunable", "recorder", "num_classes", "checkpoint_every", "checkpoint_interval_s",
                "on_progress", "should_stop", "producers", "masks", "train_flops", "target_density", "level", "data_level",
                "steps_trained", "levels", "total_steps", "state_dict", "load_state_dict",
                "wait_for_checkpoints", "missing_weights"}  # the runner's, before it releases the lock / records the end
    operations = set(protocol_members())
    for cls in SESSIONS:
        extra = sorted(public(cls) - operations - internal)
        assert not extra, f"{cls.__name__} has operations outside the Session protocol: {extra}"


def test_the_check_fails_for_a_session_without_an_operation():
    broken = type("Broken", (), {k: getattr(PlanSession, k) for k in public(PlanSession) if k != "flip_signs"})
    with pytest.raises(AssertionError, match="lacks \\['flip_signs'\\]"):
        test_every_session_implements_every_operation_of_the_protocol(broken)

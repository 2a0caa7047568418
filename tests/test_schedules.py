import math

import pytest

from prunebench.schedules import learning_rate
from prunebench.spec import ScheduleSpec


def lrs(spec: ScheduleSpec, base: float = 1.0, spe: int = 10, epochs: int = 10) -> list[float]:
    return [learning_rate(spec, base, step, spe, epochs) for step in range(spe * epochs)]


def test_epoch_unit_changes_once_per_epoch():
    out = lrs(ScheduleSpec(name="cosine", unit="epoch"), spe=4, epochs=5)
    for epoch in range(5):
        assert len(set(out[epoch * 4 : epoch * 4 + 4])) == 1
    assert out[0] == 1.0
    assert out[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 5)))


def test_step_unit_cosine_reaches_floor_smoothly():
    out = lrs(ScheduleSpec(name="cosine", unit="step", min_lr=0.01), spe=10, epochs=10)
    assert out[0] == 1.0
    assert all(a > b for a, b in zip(out, out[1:]))
    assert out[-1] == pytest.approx(0.01 + 0.5 * (1 + math.cos(math.pi * 99 / 100)) * 0.99)


def test_warmup_matches_lrr_code_then_cosine_over_the_rest():
    # LRR code: lr * (e + 1) / 10 for e < 10, then cosine over (epoch - 10) / (T - 10).
    spec = ScheduleSpec(name="cosine", unit="epoch", warmup_epochs=10, min_lr=0.0)
    out = [learning_rate(spec, 0.1, e, 1, 150) for e in range(150)]
    assert out[:10] == pytest.approx([0.1 * (e + 1) / 10 for e in range(10)])
    assert out[10] == pytest.approx(0.1)
    assert out[80] == pytest.approx(0.5 * (1 + math.cos(math.pi * 70 / 140)) * 0.1)


def test_multistep_milestones_are_absolute_epochs():
    spec = ScheduleSpec(name="multistep", milestones=[91, 136], gamma=0.1)
    out = [learning_rate(spec, 0.1, e, 1, 182) for e in range(182)]
    assert out[90] == pytest.approx(0.1) and out[91] == pytest.approx(0.01)
    assert out[135] == pytest.approx(0.01) and out[136] == pytest.approx(0.001)


def test_multistep_step_unit_drops_at_the_milestone_step():
    spec = ScheduleSpec(name="multistep", unit="step", milestones=[1.5], gamma=0.5)
    out = lrs(spec, spe=10, epochs=3)
    assert out[14] == 1.0 and out[15] == 0.5


def test_triangular_rises_then_falls():
    spec = ScheduleSpec(name="triangular", unit="step", start_fraction=0.2, peak_at=0.2)
    out = lrs(spec, spe=10, epochs=10)
    assert out[0] == pytest.approx(0.2)
    peak = out.index(max(out))
    assert peak == 20 and out[peak] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(out[:peak], out[1 : peak + 1]))
    assert all(a > b for a, b in zip(out[peak:], out[peak + 1 :]))
    assert out[-1] == pytest.approx(1 / 80)


def test_constant_and_linear():
    assert set(lrs(ScheduleSpec(name="constant"))) == {1.0}
    out = lrs(ScheduleSpec(name="linear", unit="step"), spe=1, epochs=4)
    assert out == pytest.approx([1.0, 0.75, 0.5, 0.25])


def test_pure_function_of_step():
    """Replaying the schedule (LRR) or resuming mid-level sees exactly the same rates."""
    spec = ScheduleSpec(name="cosine", unit="step", warmup_epochs=1)
    first = lrs(spec)
    assert lrs(spec) == first
    assert [learning_rate(spec, 1.0, s, 10, 10) for s in range(37, 100)] == first[37:]

"""Sparsity schedules: pure functions of the step, checked against their papers' formulas."""

from __future__ import annotations

import math

import pytest

from prunebench.sparsity import acdc_phase, acdc_phases, cubic_density, drop_fraction, is_update_step, update_steps


def test_cubic_density_is_zhu_and_gupta():
    s_i, s_f, t0, n, dt = 0.0, 0.9, 20_000, 55, 1000  # the RigL code's CIFAR-10 pruning: steps 20k to 75k
    for k in range(n + 1):
        t = t0 + k * dt
        sparsity = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3
        assert cubic_density(t, 1 - s_i, 1 - s_f, t0, t0 + n * dt) == pytest.approx(1 - sparsity, abs=1e-15)
    assert cubic_density(0, 1.0, 0.1, t0, 75_000) == 1.0 and cubic_density(90_000, 1.0, 0.1, t0, 75_000) == pytest.approx(0.1)
    assert cubic_density(47_500, 1.0, 0.1, t0, 75_000) == pytest.approx(1 - (0.9 - 0.9 * 0.5**3))


def test_update_steps_are_begin_every_up_to_end_inclusive():
    assert update_steps(0, 75_000, 100)[:3] == [0, 100, 200] and update_steps(0, 75_000, 100)[-1] == 75_000
    assert [s for s in range(20) if is_update_step(s, 3, 12, 3)] == [3, 6, 9, 12]
    assert len(update_steps(0, 75_000, 100)) == 751


def test_drop_fraction_cosine_follows_the_global_step():
    assert drop_fraction(0, 0.3, 0, 75_000, "cosine") == pytest.approx(0.3)
    assert drop_fraction(37_500, 0.3, 0, 75_000, "cosine") == pytest.approx(0.15)
    assert drop_fraction(75_000, 0.3, 0, 75_000, "cosine") == pytest.approx(0.0, abs=1e-15)
    assert drop_fraction(10_000, 0.3, 0, 75_000, "cosine") == pytest.approx(0.15 * (1 + math.cos(math.pi * 10 / 75)))
    assert drop_fraction(60_000, 0.3, 0, 75_000, "constant") == 0.3


def test_acdc_phases_of_the_authors_cifar100_config():
    """configs/neurips/iht_cifar100_wideresnet_steplr_dense13_s90.yaml of IST-DASLab/ACDC: prune at epochs
    [10, 33, 180] ([start, frequency, end]), restore at [30, 33, 170], 200 epochs."""
    phases = acdc_phases(200, 10, 20, 13, 175)
    sparse_starts = [start for phase, start, _ in phases if phase == "sparse"]
    dense_starts = [start for phase, start, _ in phases if phase == "dense" and start > 0]
    assert sparse_starts == list(range(10, 181, 33)) and dense_starts == list(range(30, 171, 33))
    assert phases[0] == ("dense", 0, 10) and phases[-1] == ("sparse", 175, 200)
    assert all(acdc_phase(step, 10, 20, 13, 175) == phase for phase, a, b in phases for step in range(a, b))
    with pytest.raises(ValueError):
        acdc_phases(100, 10, 0, 13, 90)

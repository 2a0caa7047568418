"""Cyclic training and SCULPT-ing."""

import re

import pytest
import torch

from prunebench.executors import plan_suite, run_local
from prunebench.masks import unpack
from prunebench.runner import run_one
from prunebench.spec import ExecSettings
from prunebench.store import RunDir
from prunebench.suite import SuiteError, load_suite
from tests.conftest import synthetic_suite, tiny_spec


def test_cyclic_training_restarts_the_schedule_every_cycle(tmp_path):
    spec = tiny_spec(method="cyclic", params={"density": 0.3, "cycles": 3}, prune={"scorer": "random"},
                     train={"schedule": {"name": "triangular", "unit": "step"}})
    run_one(spec, tmp_path, ExecSettings())
    run = RunDir(tmp_path, spec)
    epochs = [m for m in run.metrics() if m["kind"] == "epoch"]
    per_cycle = [[m["lr"] for m in epochs if m["level"] == c] for c in range(3)]
    assert per_cycle[0] == per_cycle[1] == per_cycle[2] and len(per_cycle[0]) == 2
    levels = run.result().levels
    assert [r.epochs_trained for r in levels] == [2, 4, 6]
    assert all(abs(r.density - 0.3) < 0.01 for r in levels)
    masks = [unpack(run.load_masks(c)) for c in range(3)]
    assert all((masks[0][n] == masks[c][n]).all() for c in (1, 2) for n in masks[0])  # one fixed mask


def test_sculpt_ends_at_the_exact_target_density(tmp_path):
    spec = tiny_spec(method="sculpt", params={"init_density": 0.8, "density": 0.07, "cycles": 2}, prune={"scorer": "snip"})
    run_one(spec, tmp_path, ExecSettings())
    levels = RunDir(tmp_path, spec).result().levels
    total = levels[-1].prunable
    assert [r.kept for r in levels] == [round(0.8 * total)] * 2 + [round(0.07 * total)]
    assert [r.epochs_trained for r in levels] == [2, 4, 6]  # the epoch budget beside the accuracy


def test_sculpts_one_shot_criterion_is_a_knob(tmp_path):
    from prunebench.methods.cyclic import Sculpt

    params = {"init_density": 0.8, "density": 0.3, "cycles": 1}
    final = {}
    for criterion in ("magnitude", "random"):
        spec = tiny_spec(method="sculpt", params=params | {"prune_scorer": criterion, "prune_allocation": "layerwise"})
        assert run_one(spec, tmp_path / criterion, ExecSettings()).status == "complete"
        run = RunDir(tmp_path / criterion, spec)
        final[criterion] = unpack(run.load_masks(1))
        layers = run.result().levels[-1].layer_density
        assert all(abs(d - 0.3) < 0.01 for d in layers.values())  # layerwise: every layer at the target
    assert any(not (final["magnitude"][n] == final["random"][n]).all() for n in final["random"])
    with pytest.raises(ValueError, match="magnitude"):
        Sculpt.Params(density=0.1, prune_scorer="magnitud")  # the closest name


LRR_MASK_SUITE = synthetic_suite("lrr_mask", """\
  - {name: lrr, levels: 2, fraction: 0.5}
  - {name: cyclic, label: cyclic_lrr_mask, cycles: 2, density: 0.25, mask_level: 2, prune: {scorer: mask_of}, from: {masks: lrr}}
""", seeds="[0]")


def test_cyclic_training_of_another_runs_mask_of_one_level(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(LRR_MASK_SUITE)
    runs = load_suite(path).runs()
    outcomes = run_local(plan_suite(runs, tmp_path / "r"), tmp_path / "r", ExecSettings(), progress=False)
    assert [o.status for o in outcomes] == ["complete", "complete"]
    lrr, cyclic = (RunDir(tmp_path / "r", spec).records() for spec in runs)
    for cycle in range(2):  # LRR's level-2 mask, on this run's own initialisation, every cycle
        ours, theirs = cyclic.masks(cycle), lrr.masks(2)
        assert all(torch.equal(ours[n], theirs[n]) for n in ours)


@pytest.mark.parametrize("level, message", [
    (1, "'cyclic_lrr_mask' prunes to density 0.25 but 'lrr''s level 1 has 0.5"),
    (3, "'lrr' has no level 3 (levels 0-2)"),
])
def test_mask_level_must_exist_and_match_the_density(tmp_path, level, message):
    path = tmp_path / "s.yaml"
    path.write_text(LRR_MASK_SUITE.replace("mask_level: 2", f"mask_level: {level}"))
    with pytest.raises(SuiteError, match=re.escape(message)):
        load_suite(path)


@pytest.mark.parametrize("keep", [True, False])
def test_cycles_carry_the_momentum_or_start_with_a_fresh_optimizer(tmp_path, monkeypatch, keep):
    from prunebench.session import TrainingSession

    resets, original = [], TrainingSession.reset_optimizer

    def spy(self):
        original(self)
        resets.append(self.level)

    monkeypatch.setattr(TrainingSession, "reset_optimizer", spy)
    spec = tiny_spec(method="cyclic", params={"cycles": 3, "density": 0.5, "keep_momentum": keep})
    assert run_one(spec, tmp_path, ExecSettings()).status == "complete"
    assert resets == ([] if keep else [1, 2])  # before cycles 2 and 3: a new optimizer each

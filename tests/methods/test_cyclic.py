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


SPLIT_SUITE = synthetic_suite("split", """\
  - {name: cyclic, label: split, cycles: 3, density: 0.5, budget: split, keep_momentum: false, prune: {scorer: random}}
  - {name: cyclic, label: per_cycle, cycles: 3, density: 0.5, keep_momentum: false, prune: {scorer: random}}
  - {name: cyclic, label: per_cycle_written, cycles: 3, density: 0.5, budget: per_cycle, keep_momentum: false, prune: {scorer: random}}
  - {name: sculpt, label: sculpt_split, init_density: 0.8, density: 0.3, cycles: 2, budget: split, prune: {scorer: random}}
""", epochs=6, seeds="[0]")


def test_a_split_budget_trains_k_cycles_of_e_over_k_epochs_each_a_full_schedule(tmp_path):
    from prunebench.planner import plan_training
    from prunebench.schedules import learning_rate

    path = tmp_path / "s.yaml"
    path.write_text(SPLIT_SUITE)
    runs = {r.label: r for r in load_suite(path).runs()}
    split, per_cycle = runs["split"], runs["per_cycle"]
    assert split.train.epochs == 2 and per_cycle.train.epochs == 6  # E = 6 over 3 cycles; per_cycle: 6 each
    assert split.train.model_copy(update={"epochs": 6}) == per_cycle.train  # nothing else of the schedule changes
    assert runs["per_cycle_written"].run_id == per_cycle.run_id  # the default written out: the same run
    assert split.run_id != per_cycle.run_id
    assert (plan_training(split).epochs, plan_training(per_cycle).epochs) == (6, 18)  # what --dry-run shows
    sculpt = runs["sculpt_split"]  # 2 cycles, the magnitude prune, 1 more: 3 cycles of 6 / 3 epochs
    assert sculpt.train.epochs == 2 and (plan_training(sculpt).epochs, plan_training(sculpt).levels) == (6, 3)

    assert run_one(split, tmp_path / "r", ExecSettings()).status == "complete"
    run = RunDir(tmp_path / "r", split)
    epochs = [m for m in run.metrics() if m["kind"] == "epoch"]
    per_epoch = 128 // 32
    # a full 2-epoch cosine schedule every cycle: the rate of each epoch's last step, from the peak down to ~0
    full = [learning_rate(split.train.schedule, 0.1, (e + 1) * per_epoch - 1, per_epoch, 2) for e in range(2)]
    assert full[-1] < 0.05 * 0.1  # the end of a schedule, not its first third (E = 6 would still be near the peak)
    for cycle in range(3):
        assert [m["lr"] for m in epochs if m["level"] == cycle] == pytest.approx(full)
    assert [r.epochs_trained for r in run.result().levels] == [2, 4, 6]  # the total budget is E = 6


@pytest.mark.parametrize("change, message", [
    ("epochs: 6", "methods[0] (split): budget: split divides train.epochs (7) evenly over the run's 3 cycles, "
                  "but 7 is not a multiple of 3: give train.epochs 6 or 9, or another number of cycles"),
    ("schedule: {name: cosine, unit: step}", "methods[0] (split): budget: split shortens each cycle's schedule"),
])
def test_a_split_budget_refuses_epochs_it_cannot_split(tmp_path, change, message):
    path = tmp_path / "s.yaml"
    bad = {"epochs: 6": "epochs: 7", "schedule: {name: cosine, unit: step}": "schedule: {name: cosine, unit: step, warmup_epochs: 1}"}
    path.write_text(SPLIT_SUITE.replace(change, bad[change]))
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    assert re.search(rf"s\.yaml:\d+: {re.escape(message)}", str(e.value))
    assert "(per_cycle)" not in str(e.value)  # only the entries that split


def test_sculpt_counts_the_cycle_after_the_prune_in_a_split_budget(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SPLIT_SUITE.replace("epochs: 6", "epochs: 4").replace("label: split, cycles: 3", "label: split, cycles: 2"))
    with pytest.raises(SuiteError, match=re.escape("methods[3] (sculpt_split): budget: split divides train.epochs (4) evenly "
                                                   "over the run's 3 cycles (2 before the magnitude prune, 1 after)")):
        load_suite(path)

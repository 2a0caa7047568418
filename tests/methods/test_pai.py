"""Pruning at initialisation end to end: exact densities, one trained level, rounds, resume."""

import pytest
import torch

from prunebench.data import DataCache
from prunebench.masks import erk_counts, full_masks, mask_stats, unpack
from prunebench.methods.pai import PaI
from prunebench.planner import PlanSession
from prunebench.runner import build_session, run_one
from prunebench.spec import ExecSettings
from prunebench.store import RunDir
from tests.conftest import requires_fashion_mnist, tiny_spec
from tests.test_runner import Interrupt, interrupt_after

SCORERS = ["random", "magnitude", "snip", "grasp", "synflow"]


def pai_spec(scorer: str, density: float = 0.1, allocation: str = "global", **params):
    return tiny_spec(method="pai", params={"density": density, **params}, prune={"scorer": scorer, "allocation": allocation})


def run(tmp_path, spec):
    assert run_one(spec, tmp_path, ExecSettings()).status == "complete"
    record = RunDir(tmp_path, spec)
    result = record.result()
    return result, [unpack(record.load_masks(k)) for k in range(len(result.levels))]


@pytest.mark.parametrize("scorer", SCORERS)
def test_prunes_at_init_to_the_exact_density_then_trains_one_level(tmp_path, scorer):
    result, masks = run(tmp_path, pai_spec(scorer, rounds=5 if scorer == "synflow" else None))
    (row,) = result.levels
    assert row.level == 0 and row.target_density == 0.1
    assert row.kept == round(0.1 * row.prunable) == mask_stats(masks[0]).kept
    assert row.epochs_trained == 2
    assert 0 <= row.init_test_accuracy <= 1 and row.init_test_loss != row.test_loss  # before training, not after
    assert 0 < row.effective_density <= row.density


@pytest.mark.parametrize("scorer", ["random", "synflow"])
def test_layer_rule_counts_hold_after_every_round(tmp_path, scorer):
    spec = pai_spec(scorer, density=0.05, allocation="erk", rounds=4)
    result, masks = run(tmp_path, spec)
    expected = erk_counts(full_masks(masks[0]), 0.05)
    assert {name: int(m.sum()) for name, m in masks[0].items()} == expected


def tiny_weight_session(tmp_path, scorer):
    spec = pai_spec(scorer, density=0.05)
    record = RunDir(tmp_path, spec)
    record.start({})
    s = build_session(spec, record, ExecSettings(), DataCache(), torch.device("cpu"))
    with torch.no_grad():
        s.prunable["fc.1.weight"].mul_(1e-3)
    PaI().run(s, PaI.Params.model_validate(spec.params))
    return s.levels[0]


def test_iterative_synflow_avoids_the_collapse_magnitude_suffers(tmp_path):
    """One layer of tiny weights: magnitude at init removes it whole; SynFlow's scores do not depend on a
    layer's scale (flow is conserved layer by layer), and its 100 rounds keep every layer connected."""
    magnitude = tiny_weight_session(tmp_path / "m", "magnitude")
    synflow = tiny_weight_session(tmp_path / "s", "synflow")
    assert magnitude.collapsed_layers == ["fc.1.weight"] and magnitude.effective_density == 0
    assert synflow.collapsed_layers == [] and synflow.effective_density > 0.95 * synflow.density


def test_rounds_change_the_synflow_mask_but_not_its_size(tmp_path):
    one, _ = run(tmp_path / "1", pai_spec("synflow", density=0.02, rounds=1))
    many, _ = run(tmp_path / "20", pai_spec("synflow", density=0.02, rounds=20))
    assert one.levels[0].kept == many.levels[0].kept
    assert one.levels[0].layer_density != many.levels[0].layer_density


def test_same_seed_same_mask(tmp_path):
    spec = pai_spec("snip", density=0.05)
    (a, ma), (b, mb) = run(tmp_path / "a", spec), run(tmp_path / "b", spec)
    assert all(torch.equal(ma[0][n], mb[0][n]) for n in ma[0])
    assert a.levels[0].test_accuracy == b.levels[0].test_accuracy


def test_resume_after_interrupt_gives_the_same_result(tmp_path, monkeypatch):
    spec = pai_spec("synflow", density=0.05, rounds=3)
    settings = ExecSettings(checkpoint_every=1, checkpoint_interval_s=0)
    clean, clean_masks = run(tmp_path / "clean", spec)
    interrupt_after(monkeypatch, 1)
    with pytest.raises(Interrupt):
        run_one(spec, tmp_path / "resumed", settings)
    monkeypatch.undo()
    resumed, resumed_masks = run(tmp_path / "resumed", spec)
    strip = lambda r: [row.model_dump(exclude={"wall_time_s"}) for row in r.levels]  # noqa: E731
    assert strip(resumed) == strip(clean)
    assert all(torch.equal(resumed_masks[0][n], clean_masks[0][n]) for n in clean_masks[0])


def test_dry_run_counts_one_level():
    plan = PlanSession(pai_spec("synflow"), steps_per_epoch=8)
    PaI().run(plan, PaI.Params(density=0.1))
    assert len(plan.levels) == 1 and plan.epochs_trained == 2 and plan.target_density == 0.1


@pytest.mark.slow
@requires_fashion_mnist
def test_real_fashion_mnist_synflow_keeps_paths_and_learns_where_magnitude_does_not(tmp_path):
    """LeNet-300-100 at 0.5% density, one epoch on 6,000 real images (chance: 10%). Magnitude at init
    leaves the input layer 0.05% dense and half its kept weights off
    every path; SynFlow keeps every weight on a path."""
    rows = {}
    for scorer in ("magnitude", "synflow"):
        spec = tiny_spec(
            method="pai", params={"density": 0.005}, prune={"scorer": scorer},
            data={"dataset": "fashion_mnist", "mean": [0.2860], "std": [0.3530], "subset": {"train_per_class": 600},
                  "synthetic": None},  # the files, not tiny_spec's generated images (a synthetic block generates them)
            model={"name": "lenet_300_100", "init": "kaiming_normal_fan_in"},
            train={"epochs": 1, "batch_size": 128, "optimizer": {"lr": 0.05}},
        )
        result, masks = run(tmp_path / scorer, spec)
        (rows[scorer],) = result.levels
        assert rows[scorer].kept == round(0.005 * rows[scorer].prunable) == mask_stats(masks[0]).kept
    assert rows["synflow"].effective_density > 0.99 * rows["synflow"].density
    assert rows["magnitude"].effective_density < 0.6 * rows["magnitude"].density
    assert rows["synflow"].test_accuracy > max(0.3, rows["magnitude"].test_accuracy + 0.15)

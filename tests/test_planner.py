"""The dry run plans from the data registry what the Session then trains: the same steps per epoch
(train size, subset, batch size, drop_last), so the same epochs, for any dataset."""

from __future__ import annotations

import pytest
import torch

from prunebench.data import DATASETS, DataCache, DatasetInfo, train_size
from prunebench.planner import plan_training
from prunebench.runner import build_session
from prunebench.spec import DataSpec, ExecSettings, SyntheticSpec
from prunebench.store import RunDir
from tests.conftest import REPO, tiny_spec

IMP_3IT = {"method": "imp", "params": {"levels": 1, "rewind": "3it"}}  # epochs: 2 + (2 - 3 / steps per epoch)


def trained_steps_per_epoch(tmp_path, spec) -> int:
    run = RunDir(tmp_path, spec)
    run.start({})
    return build_session(spec, run, ExecSettings(), DataCache(), torch.device("cpu")).steps_per_epoch


@pytest.mark.parametrize("data, train", [
    ({}, {}),
    ({"subset": {"train_per_class": 10}}, {}),
    ({}, {"batch_size": 48, "drop_last": True}),
    ({"synthetic": None, "mean": None, "std": None}, {"batch_size": 100}),  # no synthetic block: the dataset's own default shape
])
def test_planned_epochs_are_the_trained_ones(tmp_path, data, train):
    spec = tiny_spec(**IMP_3IT, data=data, train=train)
    steps = trained_steps_per_epoch(tmp_path, spec)
    assert plan_training(spec).epochs == pytest.approx(4 - 3 / steps)
    assert plan_training(spec).levels == 2


def test_the_default_synthetic_size_is_read_where_it_is_defined(monkeypatch):
    """The planner reads a generated dataset's size from its spec's defaults, not from a copy of them."""
    field = SyntheticSpec.model_fields["train_size"]
    monkeypatch.setattr(field, "default", 300)
    SyntheticSpec.model_rebuild(force=True)
    try:
        assert SyntheticSpec().train_size == 300
        assert train_size(DataSpec(dataset="synthetic")) == 300
    finally:
        monkeypatch.undo()
        SyntheticSpec.model_rebuild(force=True)


def test_a_registered_dataset_is_planned_from_its_registry_entry(monkeypatch):
    info = DatasetInfo(name="plugin_data", num_classes=5, shape=(1, 8, 8), mean=(0.5,), std=(0.25,), dirnames=("x",),
                       is_present=lambda folder: False, load=lambda folder: None, how_to_get="nowhere", train_size=500)
    monkeypatch.setitem(DATASETS._entries, "plugin_data", info)
    assert train_size(DataSpec(dataset="plugin_data")) == 500
    assert train_size(DataSpec(dataset="plugin_data", subset={"train_per_class": 20})) == 100
    spec = tiny_spec(**IMP_3IT, data={"dataset": "plugin_data", "synthetic": None}, train={"batch_size": 64})
    assert plan_training(spec).epochs == pytest.approx(4 - 3 / 8)  # ceil(500 / 64) = 8 steps an epoch


@pytest.mark.parametrize("reduced", [False, True], ids=["full", "reduced"])
@pytest.mark.parametrize("name", ["cifar10_resnet18", "cifar10_resnet18_ablations", "cifar100_resnet50", "tinyimagenet_resnet50"])
def test_the_lrr_paper_suites_warm_up_once_and_train_every_level_for_the_whole_cosine(name, reduced):
    """The authors' protocol: one warm-up before level 0, then every level (level 0 included) a full
    cosine of E - W epochs; IMP-style and LRR-style entries train equally long (issue 14)."""
    from prunebench.suite import load_suite

    suite = load_suite(REPO / "suites" / f"{name}.yaml", reduced=reduced)
    for run in suite.runs():
        plan, epochs, warmup = plan_training(run), run.train.epochs, run.train.schedule.warmup_epochs
        assert warmup > 0
        assert plan.epochs == pytest.approx(epochs + (plan.levels - 1) * (epochs - warmup)), run.label

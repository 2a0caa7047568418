"""Prefix sharing: lineage keys, the plan's shared states, and a shared prefix giving bitwise the records of training it."""

from __future__ import annotations

import json

import pytest
import torch

from prunebench.app import run_suite
from prunebench.executors import plan_suite, prefix_sharing
from prunebench.lineage import Lineage, epoch_rows
from prunebench.spec import ExecSettings
from prunebench.suite import load_suite
from tests.conftest import REPO, tiny_spec


def test_epoch_rows_cut_a_segment_at_the_epoch_ends():
    assert epoch_rows(3, 11, 4) == [(3, 4), (4, 8), (8, 11)]
    assert epoch_rows(0, 8, 4) == [(0, 4), (4, 8)]
    assert epoch_rows(5, 5, 4) == []


def test_a_level_trained_in_segments_has_the_key_of_one_train_and_nothing_else_does():
    spec = tiny_spec()
    whole, split = Lineage(spec), Lineage(spec)
    whole.train(0, 40, 0, 0, None)
    split.train(0, 10, 0, 0, None)
    split.snapshot("rewind")
    split.train(10, 40, 0, 0, None)
    assert split.key() == whole.key()
    other_order = Lineage(spec)
    other_order.train(0, 10, 0, 0, None)
    other_order.train(10, 40, 1, 0, None)  # another data order: a second train
    assert other_order.key() != whole.key()
    updated = Lineage(spec)
    updated.train(0, 10, 0, 0, None)
    updated.train(10, 40, 0, 0, "every 2 steps")  # mask updates never merge
    assert updated.key() != whole.key()
    for kind in ("revive", "reset_optimizer"):
        changed = Lineage(spec)
        changed.train(0, 40, 0, 0, None)
        changed.append(kind)
        assert changed.key() != whole.key()
    assert Lineage(spec.model_copy(update={"seed": spec.seed + 1})).key() != Lineage(spec).key()


def test_prunes_are_keyed_by_the_score_they_use():
    spec = tiny_spec()
    a, b, own = Lineage(spec), Lineage(spec), Lineage(spec)
    for lineage, scorer in ((a, "magnitude"), (b, "random"), (own, "magnitude")):
        lineage.score(3, scorer, {})
    a.prune(True, None, 0.2, "global")
    b.prune(True, None, 0.2, "global")
    own.prune(False, None, 0.2, "global")  # scores the method made itself
    assert len({a.key(), b.key(), own.key()}) == 3


def test_the_lrr_paper_suite_shares_each_seeds_dense_level_0():
    """Per seed: LRR loads the 160 epochs dense trains, IMP the 150 after its own warm-up (it rewinds there)."""
    suite = load_suite(REPO / "suites" / "cifar10_resnet18.yaml")
    plans = plan_suite(suite.runs(), REPO / "no-such-results")
    sharing = prefix_sharing(plans, ExecSettings())
    assert sharing.epochs_saved == 3 * (150 + 160)
    assert prefix_sharing(plans, ExecSettings(share_prefixes=False)).epochs_saved == 0


def records(results):
    out = {}
    for path in results.glob("*/result.json"):
        result = json.loads(path.read_text())
        out[result["run_id"]] = [{k: v for k, v in level.items() if "time" not in k} for level in result["levels"]]
        for kind in ("masks", "signs"):
            for f in sorted((path.parent / kind).glob("*.pt")):
                out[f"{result['run_id']}/{kind}/{f.name}"] = torch.load(f, weights_only=True)
    return out


def equal(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.slow
def test_runs_started_from_a_shared_prefix_record_bitwise_what_training_it_gives(tmp_path):
    suite = REPO / "suites" / "fashionmnist_quick.yaml"
    run_suite(suite, results=tmp_path / "shared", reduced=True, settings=ExecSettings(threads=1), progress=False)
    run_suite(suite, results=tmp_path / "alone", reduced=True, settings=ExecSettings(threads=1, share_prefixes=False),
              progress=False)
    assert list((tmp_path / "shared" / "prefixes").glob("*.pt")) and not (tmp_path / "alone" / "prefixes").exists()
    shared, alone = records(tmp_path / "shared"), records(tmp_path / "alone")
    assert shared.keys() == alone.keys()
    for key, value in alone.items():
        assert equal(shared[key], value), key
    loaded = [json.loads(line) for f in (tmp_path / "shared").glob("*/metrics.jsonl") for line in f.read_text().splitlines()]
    assert any("prefix" in row for row in loaded)


def test_a_run_keeping_weights_inside_a_shared_train_trains_it_first_and_the_others_load_it(tmp_path):
    """LRR keeping its state at 1ep cannot start from dense's level 0 (it must pass 1ep itself): it
    runs first, and dense loads the level 0 it trained."""
    from tests.conftest import synthetic_suite

    def loaders(lrr: str) -> dict[str, float]:
        path = tmp_path / "s.yaml"
        path.write_text(synthetic_suite("s", f"  - name: dense\n  - {lrr}\n", seeds="[0]"))
        plans = plan_suite(load_suite(path).runs(), tmp_path / "results")
        label = {p.spec.run_id: p.spec.label for p in plans}
        return {label[run_id]: epochs for run_id, epochs in prefix_sharing(plans, ExecSettings()).saved.items()}

    assert loaders("{name: lrr, levels: 1}") == {"lrr": 2}  # level 0: the 2 epochs dense trains
    assert loaders("{name: lrr, levels: 1, keep_weights: [{level: 0, at: 1ep}]}") == {"dense": 2}
    assert loaders("{name: lrr, levels: 1, keep_weights: [{level: 0, at: 2ep}, {level: every}]}") == {"lrr": 2}  # at its end


@pytest.mark.parametrize("at,loader", [("2ep", "lrr"), ("1ep", "dense")])  # kept at the end of level 0 / inside it
def test_kept_states_and_records_are_those_training_gives_whoever_loads_the_shared_prefix(tmp_path, at, loader):
    from tests.conftest import synthetic_suite
    from tests.test_session import same_bits

    lrr = f"{{name: lrr, levels: 1, keep_weights: [{{level: 0, at: {at}}}]}}"
    path = tmp_path / "s.yaml"
    path.write_text(synthetic_suite("s", f"  - name: dense\n  - {lrr}\n", seeds="[0]"))
    for results, share in ((tmp_path / "shared", True), (tmp_path / "alone", False)):
        run_suite(path, results=results, settings=ExecSettings(threads=1, share_prefixes=share), progress=False)
    (shared,), (alone,) = ([p for p in (tmp_path / d).glob(f"*/weights/level_000_at_{at}.pt")] for d in ("shared", "alone"))
    assert same_bits(torch.load(shared, weights_only=True), torch.load(alone, weights_only=True))
    loading = [json.loads(f.with_name("spec.json").read_text())["label"] for f in (tmp_path / "shared").glob("*/metrics.jsonl")
               if '"prefix"' in f.read_text()]
    assert loading == [loader]
    shared_records, alone_records = records(tmp_path / "shared"), records(tmp_path / "alone")
    assert shared_records.keys() == alone_records.keys()
    assert all(equal(shared_records[k], v) for k, v in alone_records.items())


def test_a_point_at_the_start_of_a_train_loaded_from_a_prefix_is_kept(tmp_path):
    """dense keeps its initialisation (level 0 at 0ep) and loads its whole level 0 from LRR's state."""
    from tests.conftest import synthetic_suite
    from tests.test_session import same_bits

    methods = "  - {name: lrr, levels: 1}\n  - {name: dense, keep_weights: [{level: 0, at: 0ep}]}\n"
    path = tmp_path / "s.yaml"
    path.write_text(synthetic_suite("s", methods, seeds="[0]"))
    for results, share in ((tmp_path / "shared", True), (tmp_path / "alone", False)):
        outcomes = run_suite(path, results=results, settings=ExecSettings(threads=1, share_prefixes=share), progress=False)
        assert list(outcomes["n"]) == [1, 1, 1], outcomes
    (shared,), (alone,) = ([p for p in (tmp_path / d).glob("*/weights/level_000_at_0ep.pt")] for d in ("shared", "alone"))
    assert '"prefix"' in (shared.parent.parent / "metrics.jsonl").read_text()  # dense's level 0 was loaded
    assert same_bits(torch.load(shared, weights_only=True), torch.load(alone, weights_only=True))

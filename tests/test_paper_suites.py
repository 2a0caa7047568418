"""Suites that reuse another suite's protocol through ``extends:`` (issue 14): each resolves, full and
reduced, to the protocol of the suite it says it follows, with the methods of the suite it extends."""

from __future__ import annotations

import functools

import pytest

from prunebench.data import expected_shape
from prunebench.spec import RunSpec
from prunebench.suite import Suite, load_suite
from tests.conftest import REPO

PROFILES = pytest.mark.parametrize("reduced", [False, True], ids=["full", "reduced"])


@functools.cache
def suite(name: str, reduced: bool) -> Suite:
    return load_suite(REPO / "suites" / f"{name}.yaml", reduced=reduced)


def by_run(s: Suite) -> dict[tuple[str, str, int], RunSpec]:
    return {(r.label, r.variant, r.seed): r for r in s.runs()}


# (suite, the suite whose data/model/train/prune/seeds it follows, the suite whose methods it runs)
ABLATIONS = [
    ("cifar100_resnet50_ablations", "cifar100_resnet50", "cifar10_resnet18_ablations"),
    ("tinyimagenet_resnet50_ablations", "tinyimagenet_resnet50", "cifar10_resnet18_ablations"),
]


@PROFILES
@pytest.mark.parametrize("name,protocol,methods", ABLATIONS, ids=[a[0] for a in ABLATIONS])
def test_resnet50_ablations_follow_the_resnet50_protocol_with_the_ablation_methods(name, protocol, methods, reduced):
    new, base, ablations = suite(name, reduced), suite(protocol, reduced), suite(methods, reduced)
    for part in ("data", "model", "train", "prune", "seeds"):
        assert getattr(new.spec, part) == getattr(base.spec, part), part
    assert [m.label for m in new.methods] == [m.label for m in ablations.methods]
    theirs = {m.label: m for m in ablations.methods}
    for m in new.methods:
        assert (m.method, m.prune, m.variants) == (theirs[m.label].method, theirs[m.label].prune, theirs[m.label].variants), m.label
        assert m.train == base.spec.train, m.label  # no entry brings a schedule of its own
    # dense, IMP and LRR are the very runs of the base suite (ids hash the protocol, not the suite)
    ours, base_runs = by_run(new), by_run(base)
    assert base_runs and all(ours[key].run_id == run.run_id for key, run in base_runs.items())


@pytest.mark.parametrize("name,protocol", [(a[0], a[1]) for a in ABLATIONS], ids=[a[0] for a in ABLATIONS])
def test_resnet50_ablations_claim_only_what_the_resnet50_suites_claim(name, protocol):
    """The CIFAR-10 ablation claims are not carried over to CIFAR-100 / Tiny ImageNet, nor its TurboPrune numbers."""
    new, base = suite(name, False), suite(protocol, False)
    assert [c.claim for c in new.spec.references.claims] == [c.claim for c in base.spec.references.claims]
    assert new.spec.references.numbers == base.spec.references.numbers == []


@PROFILES
def test_sculpt_resnet20_cifar100_is_the_cifar10_protocol_on_cifar100(reduced):
    new, base = suite("sculpt_resnet20_cifar100", reduced), suite("sculpt_resnet20_cifar10", reduced)
    for part in ("model", "train", "prune", "seeds"):
        assert getattr(new.spec, part) == getattr(base.spec, part), part
    if reduced:  # the CI profile is the CIFAR-10 suite's (Fashion-MNIST)
        assert new.spec.data == base.spec.data
    else:
        assert new.spec.data == suite("cifar100_resnet50", False).spec.data
        assert expected_shape(new.spec.data)[0] == 100
    ours, theirs = by_run(new), by_run(base)
    assert list(ours) == list(theirs)
    for key, run in ours.items():
        other = theirs[key]
        assert (run.method, run.params, run.train, run.prune, run.model) == (other.method, other.params, other.train, other.prune,
                                                                             other.model), key


@PROFILES
def test_the_noisy_sculpt_suite_differs_from_its_base_in_the_label_noise_only(reduced):
    new, base = suite("sculpt_resnet20_cifar10_noisy", reduced), suite("sculpt_resnet20_cifar10", reduced)
    assert new.spec.data.label_noise == 0.2
    assert new.spec.data == base.spec.data.model_copy(update={"label_noise": 0.2})
    for part in ("model", "train", "prune", "seeds"):
        assert getattr(new.spec, part) == getattr(base.spec, part), part
    ours, theirs = by_run(new), by_run(base)
    assert list(ours) == list(theirs)
    for key, run in ours.items():
        other = theirs[key]
        assert run.data.label_noise == 0.2 and run.run_id != other.run_id, key
        assert run.model_copy(update={"data": other.data, "producers": other.producers}).run_id == other.run_id, key


def test_the_noisy_suites_reduced_profile_keeps_the_noise():
    """The CI profile replaces the dataset (Fashion-MNIST) but every run still trains on noisy labels."""
    reduced = suite("sculpt_resnet20_cifar10_noisy", True)
    assert reduced.spec.data.dataset == "fashion_mnist"
    assert reduced.runs() and all(run.data.label_noise > 0 for run in reduced.runs())

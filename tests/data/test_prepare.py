"""Preparation of a split for training: symmetric label noise (the noisy-label experiments)."""

import pytest
import torch

from prunebench.data import load_prepared
from prunebench.spec import DataSpec, SyntheticSpec

SYNTHETIC = SyntheticSpec(channels=1, size=8, classes=5, train_size=400, test_size=100)


def prepared(**fields):
    return load_prepared(DataSpec(dataset="synthetic", synthetic=SYNTHETIC, **fields))


def test_label_noise_replaces_exactly_the_share_of_training_labels_by_other_classes():
    clean, noisy = prepared(), prepared(label_noise=0.25)
    changed = clean.train.labels != noisy.train.labels
    assert int(changed.sum()) == 100  # exactly round(0.25 * 400), each to another class
    assert noisy.train.labels.min() >= 0 and noisy.train.labels.max() < 5
    assert torch.equal(clean.train.images, noisy.train.images) and torch.equal(clean.test.labels, noisy.test.labels)
    assert torch.equal(prepared(label_noise=0.25).train.labels, noisy.train.labels)  # the same for every run
    other = prepared(label_noise=0.25, label_noise_seed=1).train.labels
    assert not torch.equal(other, noisy.train.labels)
    assert torch.bincount((noisy.train.labels - clean.train.labels)[changed] % 5, minlength=5)[0] == 0
    with pytest.raises(ValueError):
        DataSpec(dataset="synthetic", label_noise=1.0)

"""A synthetic dataset of random images: for throughput measurements and smoke tests only.

Its images are uniform noise and its labels random, so accuracy on it means nothing. Its shape
comes from the suite's ``data.synthetic`` block; its content is fixed (seed 0) so it is the same on
every machine.
"""

from __future__ import annotations

from pathlib import Path

import torch

from prunebench.data.registry import DatasetInfo, Split, register_dataset
from prunebench.spec import SyntheticSpec


def make_synthetic(spec: SyntheticSpec) -> tuple[Split, Split]:
    g = torch.Generator().manual_seed(0)
    splits = []
    for n in (spec.train_size, spec.test_size):
        images = torch.randint(0, 256, (n, spec.channels, spec.size, spec.size), generator=g, dtype=torch.uint8)
        splits.append(Split(images, torch.randint(0, spec.classes, (n,), generator=g)))
    return splits[0], splits[1]


def _not_from_files(folder: Path) -> tuple[Split, Split]:
    raise AssertionError("the synthetic dataset is generated, not loaded from files")


register_dataset(DatasetInfo(
    name="synthetic",
    num_classes=10,
    shape=(3, 32, 32),
    mean=(0.5,),
    std=(0.29,),  # uniform noise on [0, 1]; repeated to the channel count
    dirnames=(),
    is_present=lambda folder: False,
    load=_not_from_files,
    how_to_get="it is generated; set data.synthetic in the suite to change its shape",
    needs_files=False,
))

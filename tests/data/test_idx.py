"""Fashion-MNIST/MNIST idx files, data-root resolution, and the preparation steps."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from prunebench.data import DatasetError, load_prepared, locate
from prunebench.data.idx import read_idx
from prunebench.data.prepare import per_class_subset, repeat_channels, resize
from prunebench.data.registry import Split
from prunebench.registry import UnknownName
from prunebench.spec import DataSpec, SubsetSpec
from tests.conftest import requires_fashion_mnist


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_fake_mnist(folder: Path, n_train=30, n_test=10, compress=True, fill=0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(fill)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, compress)


@pytest.mark.parametrize("compress", [True, False])
def test_reads_idx_plain_and_gz(tmp_path, compress):
    write_fake_mnist(tmp_path / "fashion-mnist", compress=compress)
    prepared = load_prepared(DataSpec(dataset="fashion_mnist"), str(tmp_path))
    assert prepared.train.images.shape == (30, 1, 28, 28) and prepared.test.images.shape == (10, 1, 28, 28)
    assert prepared.train.labels.tolist() == [i % 10 for i in range(30)]


def test_truncated_idx_is_an_error(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, np.zeros((4, 28, 28)), compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="expected 3136 values"):
        read_idx(path)


def test_root_resolution_order(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "given" / "fashion-mnist", n_train=20)
    write_fake_mnist(tmp_path / "env" / "fashion-mnist", n_train=40)
    monkeypatch.setenv("BENCH_DATA_ROOT", str(tmp_path / "env"))
    assert locate("fashion_mnist", tmp_path / "given") == tmp_path / "given" / "fashion-mnist"
    assert locate("fashion_mnist") == tmp_path / "env" / "fashion-mnist"


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    with pytest.raises(DatasetError) as e:
        locate("mnist", tmp_path)
    assert str(tmp_path / "mnist") in str(e.value) and "bench data download mnist" in str(e.value)
    with pytest.raises(UnknownName, match=r"unknown dataset 'mnits'; known: cifar10, .*\. Did you mean 'mnist'\?"):
        locate("mnits")


@requires_fashion_mnist
def test_real_fashion_mnist_matches_torchvision(tmp_path):
    """Our idx parser and torchvision's reader agree on the installed files, image for image."""
    import torchvision

    folder = locate("fashion_mnist")
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in folder.glob("*.gz"):
        with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    prepared = load_prepared(DataSpec(dataset="fashion_mnist"))
    for train, ours in ((True, prepared.train), (False, prepared.test)):
        theirs = torchvision.datasets.FashionMNIST(str(tmp_path), train=train, download=False)
        assert torch.equal(ours.images[:, 0], theirs.data) and torch.equal(ours.labels, theirs.targets)
    assert len(prepared.train) == 60000 and len(prepared.test) == 10000


def test_subset_resize_channels():
    images = torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1).expand(12, 1, 28, 28).contiguous()
    data = Split(images, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]))
    sub = per_class_subset(data, 2)
    assert sub.images[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]  # first two of each class, file order kept
    big = repeat_channels(resize(sub, 32), 3)
    assert big.images.shape == (6, 3, 32, 32)
    assert torch.equal(big.images[:, 0], big.images[:, 2])
    assert big.images[:, 0, 5, 5].tolist() == [0, 1, 2, 3, 4, 5]  # a constant image stays constant


@requires_fashion_mnist
def test_reduced_fashion_mnist_as_cifar_shaped_input():
    prepared = load_prepared(DataSpec(dataset="fashion_mnist", subset=SubsetSpec(train_per_class=3), resize=32, channels=3))
    assert prepared.shape == (3, 32, 32) and len(prepared.train) == 30
    assert prepared.mean == (0.2860,) * 3 and prepared.std == (0.3530,) * 3


def test_synthetic_defaults():
    synthetic = load_prepared(DataSpec(dataset="synthetic"))
    assert synthetic.shape == (3, 32, 32) and synthetic.mean == (0.5,) * 3 and len(synthetic.train) == 1024

"""CIFAR-10/100 loaders on small files in the official pickle format, cross-checked with torchvision."""

from __future__ import annotations

import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
import torchvision.datasets.cifar as tv_cifar

from prunebench.data import DatasetError, dataset_info, load_prepared, locate
from prunebench.spec import DataSpec

TRAIN_SIZES = (3, 2, 4, 1, 2)  # five CIFAR-10 train batches
TEST_SIZE = 3


class _Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (SHORT_BINSTRING/BINSTRING), as the official files do.

    This is what lets one file be read both as bytes (our loader, encoding='bytes') and as str
    (torchvision, encoding='latin1'); Python 3's own pickler would write bytes objects instead.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_str


def _dump(obj: object, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _batch(rng: np.random.Generator, n: int, labels: dict[bytes, list[int]], name: bytes) -> dict[bytes, object]:
    return {
        b"batch_label": name,
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        **labels,
    }


def write_cifar10(root: Path, seed: int = 0) -> Path:
    rng, folder = np.random.default_rng(seed), root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, n in zip(names, TRAIN_SIZES + (TEST_SIZE,)):
        _dump(_batch(rng, n, {b"labels": rng.integers(0, 10, n).tolist()}, name.encode()), folder / name)
    _dump({b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": 10000, b"num_vis": 3072},
          folder / "batches.meta")
    return folder


def write_cifar100(root: Path, seed: int = 0) -> Path:
    rng, folder = np.random.default_rng(seed), root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", 7), ("test", TEST_SIZE)):
        fine = rng.integers(0, 100, n)
        labels = {b"fine_labels": fine.tolist(), b"coarse_labels": (fine // 5).tolist()}
        _dump(_batch(rng, n, labels, name.encode()), folder / name)
    _dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)],
           b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}, folder / "meta")
    return folder


WRITERS = {"cifar10": (write_cifar10, tvd.CIFAR10, 10), "cifar100": (write_cifar100, tvd.CIFAR100, 100)}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray $BENCH_DATA_ROOT; torchvision skips its MD5 check, which only the real files pass."""
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_cifar_matches_torchvision(tmp_path: Path, name: str) -> None:
    write, tv_class, num_classes = WRITERS[name]
    folder = write(tmp_path)
    prepared = load_prepared(DataSpec(dataset=name), data_root=str(tmp_path))
    assert prepared.source == str(folder) and locate(name, tmp_path) == folder
    assert locate(name, folder) == folder  # dirname "": the data root is the folder itself
    assert prepared.num_classes == num_classes and prepared.shape == (3, 32, 32)
    assert prepared.mean == dataset_info(name).mean and prepared.std == dataset_info(name).std
    for split, train in ((prepared.train, True), (prepared.test, False)):
        reference = tv_class(str(tmp_path), train=train, download=False)
        assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
        np.testing.assert_array_equal(split.images.permute(0, 2, 3, 1).numpy(), reference.data)
        assert split.labels.tolist() == reference.targets
    assert len(prepared.train) == (sum(TRAIN_SIZES) if name == "cifar10" else 7)
    assert len(prepared.test) == TEST_SIZE


def test_cifar_channel_first_row_layout(tmp_path: Path) -> None:
    """Independent of torchvision: row = 1024 red, 1024 green, 1024 blue values, each row-major."""
    folder = write_cifar10(tmp_path)
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"]
    images = load_prepared(DataSpec(dataset="cifar10"), data_root=str(tmp_path)).test.images
    assert images[1, 2, 3, 4].item() == raw[1, 2 * 1024 + 3 * 32 + 4]


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    folder = write_cifar100(tmp_path)
    with open(folder / "train", "rb") as f:
        fine = pickle.load(f, encoding="bytes")[b"fine_labels"]
    assert load_prepared(DataSpec(dataset="cifar100"), data_root=str(tmp_path)).train.labels.tolist() == fine


@pytest.mark.parametrize("name, dirname", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_missing_cifar_lists_paths_and_how_to_get(tmp_path: Path, name: str, dirname: str) -> None:
    with pytest.raises(DatasetError) as caught:
        locate(name, tmp_path)
    message = str(caught.value)
    assert "\n" not in message  # one line, as the command line prints it
    looked = message.split("(looked in ", 1)[1].split("): ", 1)[0].split(", ")
    assert str(tmp_path / dirname) in looked and str(tmp_path) in looked
    assert f"bench data download {name} --data-root DIR" in message and dirname in message


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a pickle at all")


def _no_labels(path: Path) -> None:
    _dump({b"data": np.zeros((2, 3072), np.uint8)}, path)


def _wrong_width(path: Path) -> None:
    _dump({b"data": np.zeros((2, 1000), np.uint8), b"labels": [0, 1]}, path)


def _label_count(path: Path) -> None:
    _dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, path)


def _label_range(path: Path) -> None:
    _dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, path)


@pytest.mark.parametrize("damage", [_truncate, _garbage, _no_labels, _wrong_width, _label_count, _label_range])
def test_bad_batch_file_names_it(tmp_path: Path, damage) -> None:
    bad = write_cifar10(tmp_path) / "data_batch_3"
    damage(bad)
    with pytest.raises(DatasetError, match=re.escape(str(bad))):
        load_prepared(DataSpec(dataset="cifar10"), data_root=str(tmp_path))


@pytest.mark.parametrize("name, tv_name", [("cifar10", "CIFAR10"), ("cifar100", "CIFAR100")])
def test_download_uses_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, tv_name: str) -> None:
    calls = []
    monkeypatch.setattr(tvd, tv_name, lambda root, download: calls.append((root, download)))
    dataset_info(name).download(tmp_path)
    assert calls == [(str(tmp_path), True)]


def test_batch_file_cannot_run_code(tmp_path: Path) -> None:
    """The unpickler only builds numpy arrays: a pickle naming any other global is refused."""
    import os
    import pickle

    from prunebench.data.cifar import read_batch

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Exploit(), b"labels": [0]}))
    with pytest.raises(DatasetError, match="refusing to load"):
        read_batch(path, b"labels", 10)
    assert not (tmp_path / "pwned").exists()

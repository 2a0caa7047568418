"""MNIST and Fashion-MNIST from their idx files (plain or .gz), parsed directly.

torchvision's classes expect their own folder layout and would try to download; the Debian package
dataset-fashion-mnist ships the original four .gz files, which is what we read.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from prunebench.data.registry import DatasetError, DatasetInfo, Split, register_dataset, torchvision_download

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_DTYPE = {0x08: np.uint8}


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    """An idx file as an array: magic (0, 0, dtype, ndim), ndim big-endian uint32 sizes, then data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a truncated .gz ends in EOFError
        raise DatasetError(f"{path}: unreadable ({type(e).__name__}: {e}); get the dataset again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPE:
        raise DatasetError(f"{path}: not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetError(f"{path}: expected {int(np.prod(dims))} values for shape {tuple(dims)}, found {data.size}")
    return data.reshape(tuple(dims))


def _present(folder: Path) -> bool:
    return all(_find(folder, stem) for pair in _FILES.values() for stem in pair)


def _load(folder: Path) -> tuple[Split, Split]:
    splits = []
    for images_stem, labels_stem in _FILES.values():
        images = read_idx(_find(folder, images_stem))
        labels = read_idx(_find(folder, labels_stem))
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels")
        splits.append(Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))))
    return splits[0], splits[1]


def _idx_dataset(name: str, mean: float, std: float, dirnames: tuple[str, ...], how_to_get: str,
                 download_class: str, system_paths: tuple[str, ...] = ()) -> DatasetInfo:
    """MNIST and Fashion-MNIST share the layout: 60,000 + 10,000 grayscale 28x28 images, 10 classes."""
    return register_dataset(DatasetInfo(
        name=name, num_classes=10, shape=(1, 28, 28), train_size=60000, mean=(mean,), std=(std,),
        dirnames=dirnames, system_paths=system_paths, is_present=_present, load=_load,
        how_to_get=how_to_get, download=torchvision_download(download_class),
    ))


_idx_dataset(
    "fashion_mnist", 0.2860, 0.3530, ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", ""),
    "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or `bench data download fashion_mnist --data-root DIR`",
    "FashionMNIST", system_paths=("/usr/share/datasets/fashion-mnist",),
)
_idx_dataset(
    "mnist", 0.1307, 0.3081, ("mnist", "MNIST/raw", ""),
    "`bench data download mnist --data-root DIR` (needs internet), or put the four idx files in DIR/mnist",
    "MNIST",
)

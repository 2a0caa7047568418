"""CIFAR-10 and CIFAR-100 from the original python-pickle batches, read where they lie.

The files are the ones in the official ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``
(which ``torchvision.datasets.CIFAR10/100(download=True)`` also extracts): Python 2 pickles of a
dict whose ``b'data'`` is (N, 3072) uint8, each row a channel-first 3x32x32 image. Like torchvision
we unpickle them, but through an unpickler that can only build numpy arrays, lists, dicts, bytes
and numbers, so a foreign or malicious file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from prunebench.data.registry import DatasetError, DatasetInfo, Split, register_dataset, torchvision_download

_SIDE = 32


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only the numpy names a CIFAR batch needs; any other global is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")
        return super().find_class(module, name)


def read_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as ((N, 3, 32, 32) uint8, (N,) int64); any defect becomes a DatasetError naming it.

    Unpickling a truncated or foreign file can raise almost any exception (EOFError,
    UnpicklingError, ValueError, ...), hence the broad catch around it.
    """
    try:
        with open(path, "rb") as f:
            entry = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(entry[b"data"])
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except Exception as e:  # noqa: BLE001  (see docstring)
        raise DatasetError(f"{path}: not a readable CIFAR batch ({type(e).__name__}: {e})") from e
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * _SIDE * _SIDE:
        raise DatasetError(f"{path}: expected uint8 data of shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DatasetError(f"{path}: {data.shape[0]} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{path}: labels outside 0..{num_classes - 1}")
    return data.reshape(-1, 3, _SIDE, _SIDE), labels


def _cifar(name: str, num_classes: int, dirname: str, train: tuple[str, ...], test: tuple[str, ...],
           label_key: bytes, mean: tuple[float, ...], std: tuple[float, ...], tv_class: str) -> DatasetInfo:
    """Register one CIFAR variant; the two differ only in file names, label key and constants."""

    def present(folder: Path) -> bool:
        return all((folder / f).is_file() for f in train + test)

    def split(folder: Path, files: tuple[str, ...]) -> Split:
        parts = [read_batch(folder / f, label_key, num_classes) for f in files]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        return Split(torch.from_numpy(images), torch.from_numpy(labels))

    def load(folder: Path) -> tuple[Split, Split]:
        return split(folder, train), split(folder, test)

    return register_dataset(DatasetInfo(
        name=name,
        num_classes=num_classes,
        shape=(3, _SIDE, _SIDE),
        train_size=50000,
        mean=mean,
        std=std,
        dirnames=(dirname, ""),
        is_present=present,
        load=load,
        how_to_get=f"`bench data download {name} --data-root DIR` (needs internet), or extract the official "
                   f"python-version archive so that DIR/{dirname}/ holds {', '.join(train + test)}",
        download=torchvision_download(tv_class),
    ))


_cifar("cifar10", 10, "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
       b"labels", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), "CIFAR10")
_cifar("cifar100", 100, "cifar-100-python", ("train",), ("test",),
       b"fine_labels", (0.507, 0.487, 0.441), (0.267, 0.256, 0.276), "CIFAR100")

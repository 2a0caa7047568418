"""The dataset registry and data-root resolution.

A dataset is found, in order, under ``--data-root``, ``$BENCH_DATA_ROOT``, then its known system
locations (the Debian package dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist).
Nothing is downloaded unless asked for (``bench data download``), so an offline machine fails fast
with a message saying how to get the files. Files are read where they lie and never moved.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from prunebench.registry import Registry

ENV_DATA_ROOT = "BENCH_DATA_ROOT"


@dataclass(frozen=True)
class Split:
    """A whole split as one uint8 image tensor (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("one label per image expected")

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    shape: tuple[int, int, int]  # (C, H, W) as stored
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dirnames: tuple[str, ...]  # folder names looked for under a data root ("" = the root itself)
    is_present: Callable[[Path], bool]
    load: Callable[[Path], tuple[Split, Split]]  # folder -> (train, test)
    how_to_get: str
    train_size: int | None = None  # examples in the full train split (plans epochs without loading)
    system_paths: tuple[str, ...] = ()
    download: Callable[[Path], None] | None = None  # root -> files under root/dirnames[0]
    needs_files: bool = True


class DatasetError(LookupError):
    """A dataset's files cannot be found/read; the message says how to fix it."""


DATASETS: Registry[DatasetInfo] = Registry("dataset", builtins=(
    "prunebench.data.idx", "prunebench.data.cifar", "prunebench.data.tiny_imagenet", "prunebench.data.synthetic"))


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    return DATASETS.add(info.name, info)


def dataset_names() -> list[str]:
    return DATASETS.names()


def dataset_info(name: str) -> DatasetInfo:
    """The registered dataset (prunebench.registry.UnknownName for an unknown name)."""
    return DATASETS.get(name)


def candidate_roots(data_root: str | os.PathLike | None) -> list[Path]:
    roots = [Path(data_root).expanduser()] if data_root else []
    if os.environ.get(ENV_DATA_ROOT):
        roots.append(Path(os.environ[ENV_DATA_ROOT]).expanduser())
    return roots


def locate(name: str, data_root: str | os.PathLike | None = None) -> Path:
    """The folder holding ``name``'s files, or a DatasetError listing where it looked and how to get it."""
    info = dataset_info(name)
    looked: list[Path] = []
    for root in candidate_roots(data_root):
        for dirname in info.dirnames:
            folder = root / dirname if dirname else root
            looked.append(folder)
            if folder.is_dir() and info.is_present(folder):
                return folder
    for system in info.system_paths:
        looked.append(Path(system))
        if Path(system).is_dir() and info.is_present(Path(system)):
            return Path(system)
    places = ", ".join(str(p) for p in _unique(looked)) or "(no data root given)"
    raise DatasetError(f"dataset {name!r} not found (looked in {places}): give --data-root DIR or set "
                       f"${ENV_DATA_ROOT}; to get it: {info.how_to_get}")


def torchvision_download(class_name: str) -> Callable[[Path], None]:
    """A download hook through torchvision's dataset class of that name (same on-disk layout)."""

    def download(root: Path) -> None:
        import torchvision.datasets as tvd

        getattr(tvd, class_name)(str(root), download=True)

    return download


def _unique(paths: Sequence[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))

"""Tiny ImageNet (200 classes, 64x64) from the official ``tiny-imagenet-200/`` folder, read in place.

Class index = line order of ``wnids.txt``. The training images lie in ``train/<wnid>/images/``;
the test split is the labelled ``val`` split (``val/images/`` with ``val/val_annotations.txt``),
because the official test set has no labels. A few images are grayscale, so every image is
converted to RGB. File names are sorted so the order, and so any per-class subset, is deterministic.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from prunebench.data.registry import DatasetError, DatasetInfo, Split, register_dataset

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
_DIRNAME = "tiny-imagenet-200"
_SIDE = 64


def read_wnids(path: Path) -> dict[str, int]:
    """wnid -> class index, in line order."""
    wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(set(wnids)) != len(wnids):
        raise DatasetError(f"{path}: duplicate wnids")
    return {w: i for i, w in enumerate(wnids)}


def read_val_annotations(path: Path, classes: dict[str, int]) -> dict[str, int]:
    """Image file name -> class index, from the tab-separated ``filename wnid x0 y0 x1 y1`` lines."""
    labels: dict[str, int] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DatasetError(f"{path}:{number}: expected tab-separated 'filename wnid ...', got {line!r}")
        if fields[1] not in classes:
            raise DatasetError(f"{path}:{number}: wnid {fields[1]!r} is not in wnids.txt")
        labels[fields[0]] = classes[fields[1]]
    return labels


def decode(path: Path) -> np.ndarray:
    """One image as (64, 64, 3) uint8 RGB."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except OSError as e:  # PIL's UnidentifiedImageError and truncated-file errors are OSErrors
        raise DatasetError(f"{path}: cannot decode image ({e})") from e
    if rgb.size != (_SIDE, _SIDE):
        raise DatasetError(f"{path}: expected {_SIDE}x{_SIDE} pixels, got {rgb.size[0]}x{rgb.size[1]}")
    return np.asarray(rgb)


def decode_all(files: list[Path], labels: list[int]) -> Split:
    """Decode into one preallocated array (the 100k train images are 1.2 GB); PIL releases the GIL
    while decoding, so threads give a near-linear speed-up on the cold load."""
    images = np.empty((len(files), _SIDE, _SIDE, 3), dtype=np.uint8)

    def fill(i: int) -> None:
        images[i] = decode(files[i])

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(fill, range(len(files))))
    chw = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return Split(chw, torch.tensor(labels, dtype=torch.int64))


def _present(folder: Path) -> bool:
    return (folder / "wnids.txt").is_file() and (folder / "train").is_dir() \
        and (folder / "val" / "val_annotations.txt").is_file()


def _load(folder: Path) -> tuple[Split, Split]:
    classes = read_wnids(folder / "wnids.txt")
    train_files: list[Path] = []
    train_labels: list[int] = []
    for wnid, index in classes.items():
        files = sorted((folder / "train" / wnid / "images").glob("*.JPEG"))
        if not files:
            raise DatasetError(f"{folder / 'train' / wnid / 'images'}: no .JPEG images for class {wnid}")
        train_files += files
        train_labels += [index] * len(files)

    annotations_path = folder / "val" / "val_annotations.txt"
    annotations = read_val_annotations(annotations_path, classes)
    val_images = folder / "val" / "images"
    val_files = sorted(val_images.glob("*.JPEG"))
    names = {f.name for f in val_files}
    mismatched = sorted(names ^ annotations.keys())
    if mismatched:
        name = mismatched[0]
        problem = f"no entry for {name}" if name in names else f"an entry for {name}, not in {val_images}"
        raise DatasetError(f"{annotations_path}: {problem}")
    return decode_all(train_files, train_labels), decode_all(val_files, [annotations[f.name] for f in val_files])


def _download(root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(URL, download_root=str(root), md5=MD5)


register_dataset(DatasetInfo(
    name="tiny_imagenet",
    num_classes=200,
    shape=(3, _SIDE, _SIDE),
    train_size=100000,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    dirnames=(_DIRNAME, ""),
    is_present=_present,
    load=_load,
    how_to_get=f"`bench data download tiny_imagenet --data-root DIR` (needs internet), or unzip {URL} "
               f"into DIR so that DIR/{_DIRNAME}/ holds wnids.txt, train/ and val/",
    download=_download,
))

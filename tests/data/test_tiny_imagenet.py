"""Tiny ImageNet loader on a small tree in the official layout, checked against independent PIL decodes.

torchvision has no Tiny ImageNet class, so pixels are compared with PIL reading the same files
(JPEG is lossy: the reference is the decoded file, never the array that was encoded) and labels
with wnids.txt order and val_annotations.txt parsed here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.utils as tv_utils
from PIL import Image

from prunebench.data import DatasetError, dataset_info, load_prepared, locate
from prunebench.spec import DataSpec

WNIDS = ["n02000002", "n01000001", "n03000003"]  # not alphabetical: class index must follow line order
GRAY = "n01000001_1.JPEG"  # the one grayscale ('L') training image
VAL = {"val_0.JPEG": "n03000003", "val_1.JPEG": "n02000002", "val_2.JPEG": "n01000001",
       "val_3.JPEG": "n03000003", "val_4.JPEG": "n02000002"}


def _jpeg(path: Path, rng: np.random.Generator, mode: str = "RGB", side: int = 64) -> None:
    shape = (side, side, 3) if mode == "RGB" else (side, side)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, "JPEG", quality=90)


def write_tiny_imagenet(root: Path, seed: int = 0) -> Path:
    rng, folder = np.random.default_rng(seed), root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("".join(f"{w}\n" for w in WNIDS))
    (folder / "words.txt").write_text("".join(f"{w}\tthing {w}\n" for w in WNIDS))
    for wnid in WNIDS:
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        for k in (2, 0, 1):  # created out of order: the loader sorts
            name = f"{wnid}_{k}.JPEG"
            _jpeg(images / name, rng, "L" if name == GRAY else "RGB")
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t63\t63\n")
    (folder / "val" / "images").mkdir(parents=True)
    for name in VAL:
        _jpeg(folder / "val" / "images" / name, rng)
    lines = [f"{name}\t{wnid}\t{i}\t{i + 1}\t40\t50\n" for i, (name, wnid) in enumerate(VAL.items())]
    (folder / "val" / "val_annotations.txt").write_text("".join(reversed(lines)))
    (folder / "test" / "images").mkdir(parents=True)
    _jpeg(folder / "test" / "images" / "test_0.JPEG", rng)  # unlabelled: must be ignored
    return folder


def _pil_rgb(path: Path) -> np.ndarray:
    """Independent reference decode: grayscale replicated to three channels by hand, not by convert()."""
    with Image.open(path) as image:
        pixels = np.asarray(image)
        return np.repeat(pixels[..., None], 3, axis=2) if image.mode == "L" else pixels


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_tiny_imagenet(tmp_path)


def _load(root: Path):
    return load_prepared(DataSpec(dataset="tiny_imagenet"), data_root=str(root))


def test_pixels_and_labels_match_independent_reading(folder: Path) -> None:
    prepared = _load(folder.parent)
    assert prepared.source == str(folder) and locate("tiny_imagenet", folder.parent) == folder
    assert locate("tiny_imagenet", folder) == folder  # dirname "": the data root is the folder itself
    info = dataset_info("tiny_imagenet")
    assert (prepared.num_classes, prepared.shape) == (200, (3, 64, 64)) == (info.num_classes, info.shape)
    assert prepared.mean == (0.485, 0.456, 0.406) and prepared.std == (0.229, 0.224, 0.225)

    order = [w.strip() for w in (folder / "wnids.txt").read_text().splitlines()]
    train = [(p, order.index(w)) for w in order for p in sorted((folder / "train" / w / "images").iterdir())]
    annotation_lines = (folder / "val" / "val_annotations.txt").read_text().splitlines()
    annotations = dict(line.split("\t")[:2] for line in annotation_lines)
    val = [(p, order.index(annotations[p.name])) for p in sorted((folder / "val" / "images").iterdir())]
    for split, expected in ((prepared.train, train), (prepared.test, val)):
        assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
        assert split.labels.tolist() == [label for _, label in expected]
        reference = np.stack([_pil_rgb(path) for path, _ in expected]).transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(split.images.numpy(), reference)
    assert prepared.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert prepared.test.labels.tolist() == [2, 0, 1, 2, 0]  # val_0..val_4 via WNIDS line order


def test_grayscale_image_has_three_identical_channels(folder: Path) -> None:
    train = _load(folder.parent).train
    gray = train.images[3 + 1]  # class 1 (second line of wnids.txt), second sorted file
    with Image.open(folder / "train" / WNIDS[1] / "images" / GRAY) as image:
        assert image.mode == "L"
        pixels = torch.from_numpy(np.array(image))
    for channel in gray:
        assert torch.equal(channel, pixels)


def test_files_are_read_in_place(folder: Path) -> None:
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}
    _load(folder.parent)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()} == before


def test_missing_dataset_lists_paths_and_how_to_get(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        locate("tiny_imagenet", tmp_path)
    message = str(caught.value)
    assert "\n" not in message  # one line, as the command line prints it
    looked = message.split("(looked in ", 1)[1].split("): ", 1)[0].split(", ")
    assert str(tmp_path / 'tiny-imagenet-200') in looked and str(tmp_path) in looked
    assert "bench data download tiny_imagenet --data-root DIR" in message and "tiny-imagenet-200.zip" in message


def _drop_annotation(folder: Path) -> Path:
    path = folder / "val" / "val_annotations.txt"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if not line.startswith("val_3")))
    return path


def _unknown_wnid(folder: Path) -> Path:
    path = folder / "val" / "val_annotations.txt"
    path.write_text(path.read_text().replace("n01000001", "n09999999"))
    return path


def _extra_annotation(folder: Path) -> Path:
    path = folder / "val" / "val_annotations.txt"
    path.write_text(path.read_text() + "val_9.JPEG\tn01000001\t0\t0\t1\t1\n")
    return path


def _wrong_size(folder: Path) -> Path:
    path = folder / "train" / WNIDS[2] / "images" / f"{WNIDS[2]}_1.JPEG"
    _jpeg(path, np.random.default_rng(1), side=32)
    return path


def _not_a_jpeg(folder: Path) -> Path:
    path = folder / "val" / "images" / "val_2.JPEG"
    path.write_bytes(path.read_bytes()[:100])
    return path


def _empty_class(folder: Path) -> Path:
    images = folder / "train" / WNIDS[0] / "images"
    for p in images.iterdir():
        p.unlink()
    return images


@pytest.mark.parametrize("damage, detail", [
    (_drop_annotation, "no entry for val_3.JPEG"),
    (_unknown_wnid, "n09999999"),
    (_extra_annotation, "val_9.JPEG"),
    (_wrong_size, "32x32"),
    (_not_a_jpeg, "cannot decode"),
    (_empty_class, "no .JPEG images"),
])
def test_defects_raise_dataset_error_naming_the_file(folder: Path, damage, detail: str) -> None:
    bad = damage(folder)
    with pytest.raises(DatasetError, match=re.escape(str(bad))) as caught:
        _load(folder.parent)
    assert detail in str(caught.value)


def test_download_fetches_the_official_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", lambda url, **kw: calls.append((url, kw)))
    dataset_info("tiny_imagenet").download(tmp_path)
    assert calls == [("http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                      {"download_root": str(tmp_path), "md5": "90528d7ca1a48142e341f4ef8d21d0de"})]

"""From files to the tensors a run trains on: subset, resize and channel repetition, done once."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from prunebench.data.registry import DatasetError, Split, dataset_info, locate
from prunebench.data.synthetic import make_synthetic
from prunebench.seeds import derive_seed
from prunebench.spec import DataSpec, SyntheticSpec


@dataclass(frozen=True)
class Prepared:
    train: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # where the files were read from

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])


def per_class_subset(split: Split, per_class: int | None) -> Split:
    """The first ``per_class`` examples of every class, kept in file order."""
    if per_class is None:
        return split
    keep = torch.cat([torch.nonzero(split.labels == c).flatten()[:per_class] for c in split.labels.unique()])
    keep = keep.sort().values
    return Split(split.images[keep], split.labels[keep])


def resize(split: Split, side: int | None) -> Split:
    if side is None or split.images.shape[-2:] == (side, side):
        return split
    chunks = [
        F.interpolate(chunk.float(), size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        .round_().clamp_(0, 255).to(torch.uint8)
        for chunk in split.images.split(8192)
    ]
    return Split(torch.cat(chunks), split.labels)


def repeat_channels(split: Split, channels: int | None) -> Split:
    have = split.images.shape[1]
    if channels is None or channels == have:
        return split
    if have != 1:
        raise DatasetError(f"can only repeat a single channel, the data has {have}")
    return Split(split.images.expand(-1, channels, -1, -1).contiguous(), split.labels)


def resolved_normalization(spec: DataSpec) -> tuple[list[float], list[float]]:
    """The suite's mean/std, or the dataset's own constants repeated to the output channel count."""
    info = dataset_info(spec.dataset)
    channels = spec.channels or (spec.synthetic.channels if spec.synthetic else info.shape[0])
    mean = spec.mean or _repeat(info.mean, channels)
    std = spec.std or _repeat(info.std, channels)
    if len(mean) != channels or len(std) != channels:
        raise DatasetError(f"normalisation needs {channels} values per statistic, got mean {mean} std {std}")
    return list(mean), list(std)


def _repeat(values: tuple[float, ...], channels: int) -> list[float]:
    return list(values) * channels if len(values) == 1 else list(values)


def generated_spec(spec: DataSpec) -> SyntheticSpec | None:
    """The shape of a generated dataset (its ``data.synthetic`` block or the defaults); None for files."""
    if spec.synthetic is not None or not dataset_info(spec.dataset).needs_files:
        return spec.synthetic or SyntheticSpec()
    return None


def train_size(spec: DataSpec) -> int:
    """Training examples a run sees (after the per-class subset), from the registry: no file is read."""
    synth = generated_spec(spec)
    if synth is not None:
        total, classes = synth.train_size, synth.classes
    else:
        info = dataset_info(spec.dataset)
        if info.train_size is None:
            raise ValueError(f"dataset {spec.dataset!r} does not state its train size (DatasetInfo.train_size)")
        total, classes = info.train_size, info.num_classes
    per_class = spec.subset.train_per_class  # subsets are class-balanced: the first N of each class
    return min(total, per_class * classes) if per_class else total


def expected_shape(spec: DataSpec) -> tuple[int, tuple[int, int, int]]:
    """(classes, (C, H, W)) a run will see, known without reading any file."""
    synth = generated_spec(spec)
    if synth is not None:
        classes, (c, h, w) = synth.classes, (synth.channels, synth.size, synth.size)
    else:
        info = dataset_info(spec.dataset)
        classes, (c, h, w) = info.num_classes, info.shape
    if spec.resize:
        h = w = spec.resize
    return classes, (spec.channels or c, h, w)


def require_files(spec: DataSpec, data_root: str | None = None) -> None:
    """DatasetError now (nothing is read) if a run of ``spec`` would not find its dataset's files."""
    if generated_spec(spec) is None:
        locate(spec.dataset, data_root)


class DataCache:
    """Prepared datasets kept for the life of an executor, so runs of one suite load files once."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str | None], Prepared] = {}

    def get(self, spec: DataSpec, data_root: str | None) -> Prepared:
        key = (spec.model_dump_json(), data_root)
        if key not in self._items:
            self._items[key] = load_prepared(spec, data_root)
        return self._items[key]


def noisy_labels(split: Split, share: float, num_classes: int, seed: int) -> Split:
    """Exactly round(share * n) of the n labels, chosen uniformly, each replaced by one of the other
    classes drawn uniformly (symmetric label noise); keyed by ``seed``, so every run of a suite trains
    on the same noisy labels. The images stay as they are."""
    if not share:
        return split
    g = torch.Generator().manual_seed(derive_seed(seed, "label-noise"))
    chosen = torch.randperm(len(split.labels), generator=g)[: round(share * len(split.labels))]
    labels = split.labels.clone()
    labels[chosen] = (labels[chosen] + torch.randint(1, num_classes, (len(chosen),), generator=g)) % num_classes
    return Split(split.images, labels)


def load_prepared(spec: DataSpec, data_root: str | None = None) -> Prepared:
    synth = generated_spec(spec)
    if synth is None:
        info = dataset_info(spec.dataset)
        folder = locate(spec.dataset, data_root)
        try:
            train, test = info.load(folder)
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - a reader's error on a damaged file: name the dataset and folder
            raise DatasetError(f"{spec.dataset} in {folder}: unreadable ({type(e).__name__}: {e}); get the dataset again") from None
        source, num_classes = str(folder), info.num_classes
    else:
        train, test = make_synthetic(synth)
        source, num_classes = "generated", synth.classes
    train = noisy_labels(per_class_subset(train, spec.subset.train_per_class), spec.label_noise, num_classes,
                         spec.label_noise_seed)
    test = per_class_subset(test, spec.subset.test_per_class)
    train, test = (repeat_channels(resize(s, spec.resize), spec.channels) for s in (train, test))
    mean, std = resolved_normalization(spec)
    return Prepared(train, test, num_classes, tuple(mean), tuple(std), source)

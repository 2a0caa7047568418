"""Datasets: registry, loading into whole-split uint8 tensors, and the on-device batch loader."""

from prunebench.data import cifar, idx, synthetic, tiny_imagenet  # noqa: F401  (registers the built-in datasets)
from prunebench.data.loader import DeviceLoader, EpochPlan, normalize
from prunebench.data.prepare import DataCache, Prepared, expected_shape, load_prepared
from prunebench.data.registry import (
    DatasetError,
    DatasetInfo,
    Split,
    dataset_info,
    dataset_names,
    locate,
    register_dataset,
)

__all__ = [
    "DataCache", "DatasetError", "DatasetInfo", "DeviceLoader", "EpochPlan", "Prepared", "Split",
    "dataset_info", "dataset_names", "expected_shape", "load_prepared", "locate", "normalize", "register_dataset",
]

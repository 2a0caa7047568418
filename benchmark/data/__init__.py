"""Datasets: registry, loading into whole-split uint8 tensors, and the on-device batch loader."""

from prunebench.data.loader import DeviceLoader, EpochPlan, normalize
from prunebench.data.prepare import DataCache, Prepared, expected_shape, load_prepared, require_files, train_size
from prunebench.data.registry import (
    DATASETS,
    DatasetError,
    DatasetInfo,
    Split,
    dataset_info,
    dataset_names,
    locate,
    register_dataset,
)

__all__ = [
    "DATASETS", "DataCache", "DatasetError", "DatasetInfo", "DeviceLoader", "EpochPlan", "Prepared", "Split",
    "dataset_info", "dataset_names", "expected_shape", "load_prepared", "require_files", "train_size", "locate", "normalize",
    "register_dataset",
]

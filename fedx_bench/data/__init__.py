"""Datasets as uint8 NHWC arrays: CIFAR-10, SVHN, Fashion-MNIST and a synthetic one for tests.

Importing this package registers every loader in :data:`fedx_bench.registry.DATASETS`;
:func:`load_dataset` dispatches through that registry.
"""

from __future__ import annotations

from . import cifar10, fmnist, svhn, synthetic  # noqa: F401  (import registers the loaders)
from .datasets import (
    ArrayDataset,
    dataset_sources,
    default_data_root,
    load_dataset,
    stratified_indices,
    user_cache_dir,
)
from .embedded import load_embedded_cifar10
from .synthetic import make_synthetic

__all__ = [
    "ArrayDataset",
    "dataset_sources",
    "default_data_root",
    "load_dataset",
    "load_embedded_cifar10",
    "make_synthetic",
    "stratified_indices",
    "user_cache_dir",
]

"""The in-memory dataset type, where datasets live on disk, and the dispatching ``load_dataset``.

Every dataset is held as plain uint8 NHWC arrays (a few hundred MB at most for the datasets here),
so partitioning, augmentation and evaluation never depend on how the files were stored. Each
loader records where its bytes came from in ``provenance`` so a result can be traced to its data.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, CorruptDataError, DatasetNotFoundError
from ..registry import DATASETS

DATA_ENV = "FEDX_BENCH_DATA"
CACHE_ENV = "FEDX_BENCH_CACHE"
GRAYSCALE_MODES = ("repeat3", "single")
TRAIN_LIMIT_SEED = 0

GET_HINT = "point --data-root / FEDX_BENCH_DATA at a folder holding it"


@dataclass
class ArrayDataset:
    """A labelled image dataset as uint8 NHWC arrays plus its normalisation constants and provenance."""

    name: str
    train_x: np.ndarray = field(repr=False)
    train_y: np.ndarray = field(repr=False)
    test_x: np.ndarray = field(repr=False)
    test_y: np.ndarray = field(repr=False)
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    provenance: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Catch loader bugs here rather than as a shape error deep inside a training loop.
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
                raise ValueError(f"{self.name} {split}_x must be uint8 (N, H, W, 1|3), got {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"{self.name} {split}_y must be int64 ({x.shape[0]},), got {y.dtype} {y.shape}")
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise ValueError(f"{self.name}: train and test image shapes differ")
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"{self.name}: mean/std need {self.channels} entries")

    @property
    def channels(self) -> int:
        """Number of image channels (3 for RGB, 1 for single-channel grayscale)."""
        return int(self.train_x.shape[-1])

    def __repr__(self) -> str:
        return (
            f"ArrayDataset({self.name!r}, train={tuple(self.train_x.shape)}, "
            f"test={tuple(self.test_x.shape)}, "
            f"classes={self.num_classes}, source={self.provenance.get('source')!r})"
        )


# A loader takes (root, source, download, verify_checksums, grayscale) keywords and returns an ArrayDataset.
Loader = Callable[..., ArrayDataset]


def user_cache_dir() -> str:
    """``$FEDX_BENCH_CACHE``, else ``$XDG_CACHE_HOME/fedx-bench``, else ``~/.cache/fedx-bench``."""
    if os.environ.get(CACHE_ENV):
        return os.path.abspath(os.path.expanduser(os.environ[CACHE_ENV]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.abspath(os.path.join(base, "fedx-bench"))


def default_data_root() -> str:
    """``$FEDX_BENCH_DATA`` if set, else ``<user cache dir>/data`` (where ``download: true`` puts files)."""
    if os.environ.get(DATA_ENV):
        return os.path.abspath(os.path.expanduser(os.environ[DATA_ENV]))
    return os.path.join(user_cache_dir(), "data")


def resolve_root(root: str | os.PathLike[str] | None) -> str:
    """The absolute data root to search: the given one or :func:`default_data_root`."""
    return os.path.abspath(os.path.expanduser(os.fspath(root))) if root is not None else default_data_root()


def one_line(text: str) -> str:
    """Collapse whitespace so an error prints as the single line the CLI promises."""
    return re.sub(r"\s+", " ", str(text)).strip()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_source(dataset: str, source: str, allowed: Sequence[str]) -> str:
    """Reject an unknown ``source`` for ``dataset`` with a ConfigError listing the valid ones."""
    if source not in allowed:
        raise ConfigError(f"unknown source {source!r} for dataset {dataset!r}; known: {', '.join(allowed)}")
    return source


def check_grayscale(grayscale: str) -> str:
    """Validate the ``grayscale`` option (only F-MNIST uses it, but a typo should fail everywhere)."""
    if grayscale not in GRAYSCALE_MODES:
        raise ConfigError(f"unknown grayscale mode {grayscale!r}; known: {', '.join(GRAYSCALE_MODES)}")
    return grayscale


def not_found(dataset: str, looked: Iterable[str], how: str) -> DatasetNotFoundError:
    """The one-line 'not found' error naming every path looked at and how to get the data."""
    paths = ", ".join(dict.fromkeys(looked)) or "(nowhere)"
    return DatasetNotFoundError(one_line(f"{dataset} not found: looked in {paths}; {how}"))


def download_failed(dataset: str, root: str, err: BaseException) -> DatasetNotFoundError:
    """Turn a torchvision download failure (usually: no network) into a one-line DatasetNotFoundError."""
    msg = f"{dataset} not found and its download into {root} failed ({type(err).__name__}: {err}); {GET_HINT}"
    return DatasetNotFoundError(one_line(msg))


def corrupt(path: str, what: str) -> CorruptDataError:
    """A one-line CorruptDataError naming the file."""
    return CorruptDataError(one_line(f"{path}: {what}"))


def check_labels(y: np.ndarray, num_classes: int, path: str) -> np.ndarray:
    """Labels as int64, raising CorruptDataError if any lies outside ``[0, num_classes)``."""
    y = np.asarray(y).astype(np.int64, copy=False).reshape(-1)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise corrupt(path, f"labels outside 0..{num_classes - 1} (min {y.min()}, max {y.max()})")
    return y


def stratified_indices(y: np.ndarray, limit: int, seed: int = TRAIN_LIMIT_SEED) -> np.ndarray:
    """Sorted indices of a class-stratified subset of ``limit`` items (largest-remainder quotas, seeded).

    Sorting keeps the original order, so a subset of a subset-friendly order stays meaningful.
    """
    y = np.asarray(y)
    n = len(y)
    if limit >= n:
        return np.arange(n)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (limit / n)
    quota = np.floor(exact).astype(np.int64)
    # Hand the leftover slots to the largest fractional parts (ties: lower class first).
    order = sorted(range(len(classes)), key=lambda i: (-(exact[i] - quota[i]), i))
    for i in order[: limit - int(quota.sum())]:
        quota[i] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked)) if picked else np.arange(0)


def apply_train_limit(ds: ArrayDataset, train_limit: int | None) -> ArrayDataset:
    """Cut the training split to a class-stratified ``train_limit`` images (CPU-sized variants)."""
    if train_limit is None:
        return ds
    if isinstance(train_limit, bool) or not isinstance(train_limit, (int, np.integer)) or train_limit < 1:
        raise ConfigError(f"data.train_limit must be a positive integer or null, got {train_limit!r}")
    idx = stratified_indices(ds.train_y, int(train_limit))
    prov = dict(ds.provenance)
    prov["train_limit"] = {
        "requested": int(train_limit),
        "kept": int(len(idx)),
        "of": int(len(ds.train_y)),
        "seed": TRAIN_LIMIT_SEED,
        "method": "class-stratified: largest-remainder quotas, seeded permutation per class, order kept",
    }
    return ArrayDataset(
        name=ds.name,
        train_x=np.ascontiguousarray(ds.train_x[idx]),
        train_y=ds.train_y[idx],
        test_x=ds.test_x,
        test_y=ds.test_y,
        num_classes=ds.num_classes,
        mean=ds.mean,
        std=ds.std,
        provenance=prov,
    )


def load_cached_arrays(path: str, keys: Sequence[str]) -> dict[str, np.ndarray] | None:
    """Read a decoded-array cache; any problem just means 'no cache' (it is only a speed-up)."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in keys}
    except Exception as e:  # a broken cache is never fatal
        warnings.warn(f"ignoring unreadable dataset cache {path}: {e}", stacklevel=3)
        return None


def save_cached_arrays(path: str, arrays: dict[str, np.ndarray]) -> bool:
    """Write a decoded-array cache atomically; failure (read-only home, full disk) only warns."""
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=os.path.dirname(path))
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
        return True
    except Exception as e:  # a cache we cannot write is never fatal
        warnings.warn(f"could not write dataset cache {path}: {e}", stacklevel=3)
        if tmp and os.path.exists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def load_dataset(
    name: str,
    root: str | None = None,
    source: str = "auto",
    download: bool = False,
    verify_checksums: bool = True,
    grayscale: str = "repeat3",
    train_limit: int | None = None,
) -> ArrayDataset:
    """Load dataset ``name`` through its registered loader, then apply ``train_limit``.

    ``root`` defaults to :func:`default_data_root`; ``source`` picks the on-disk format (each loader
    lists its own; ``auto`` tries the faithful ones in order). Raises ConfigError (unknown name or
    option), DatasetNotFoundError (nothing on disk, download off or failed) or CorruptDataError.
    """
    loader: Loader = DATASETS.get(name)
    check_grayscale(grayscale)
    ds = loader(root=root, source=source, download=download, verify_checksums=verify_checksums, grayscale=grayscale)
    return apply_train_limit(ds, train_limit)


def dataset_sources(name: str) -> list[str]:
    """The ``source`` values dataset ``name`` accepts (from its registry metadata)."""
    return list(DATASETS.meta(name).get("sources", ["auto"]))


def provenance_base(dataset: str, source: str, path: str, notes: str, **extra: Any) -> dict[str, Any]:
    """The common provenance keys every loader fills in."""
    prov: dict[str, Any] = {"dataset": dataset, "source": source, "path": path, "notes": notes, "files": {}}
    prov.update(extra)
    return prov

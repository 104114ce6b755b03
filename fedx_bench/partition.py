"""Client partitions: the reference Dirichlet label-skew split and an IID split.

``dirichlet_split`` reproduces the reference (MOON-style) algorithm draw for draw: a legacy NumPy
``RandomState(seed)`` consumes exactly the stream that ``np.random.seed(seed)`` followed by the
reference code would, so the same seed gives the same client index lists.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import PartitionError

PARTITION_VERSION = "v1"


@dataclass
class Partition:
    """Which training indices each client holds, with per-client class counts and a content hash."""

    client_indices: list[np.ndarray]
    num_classes: int
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    version: str = PARTITION_VERSION

    @property
    def n_clients(self) -> int:
        return len(self.client_indices)

    @property
    def sizes(self) -> list[int]:
        return [len(ix) for ix in self.client_indices]

    def class_counts(self, labels: np.ndarray) -> np.ndarray:
        """(n_clients, num_classes) matrix of label counts."""
        out = np.zeros((self.n_clients, self.num_classes), dtype=np.int64)
        for k, ix in enumerate(self.client_indices):
            out[k] = np.bincount(labels[ix], minlength=self.num_classes)[: self.num_classes]
        return out

    @property
    def sha256(self) -> str:
        """Hash of the index lists in client order: two runs with equal hashes saw the same split."""
        h = hashlib.sha256()
        for k, ix in enumerate(self.client_indices):
            h.update(f"client{k}:".encode())
            h.update(np.asarray(ix, dtype=np.int64).tobytes())
        return h.hexdigest()

    def to_json(self, labels: np.ndarray | None = None) -> dict[str, Any]:
        """JSON record persisted with every run."""
        rec: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "params": self.params,
            "sha256": self.sha256,
            "sizes": self.sizes,
            "indices": [np.asarray(ix).tolist() for ix in self.client_indices],
        }
        if labels is not None:
            rec["class_counts"] = self.class_counts(labels).tolist()
        return rec

    @classmethod
    def from_json(cls, rec: dict[str, Any], num_classes: int) -> Partition:
        return cls(
            client_indices=[np.asarray(ix, dtype=np.int64) for ix in rec["indices"]],
            num_classes=num_classes,
            name=rec["name"],
            params=rec.get("params", {}),
            version=rec.get("version", PARTITION_VERSION),
        )


def _check_common(labels: np.ndarray, n_clients: int, min_size: int) -> None:
    n = len(labels)
    if n_clients < 1:
        raise PartitionError(f"n_clients must be >= 1, got {n_clients}")
    if n_clients > n:
        raise PartitionError(f"cannot split {n} samples over {n_clients} clients (more clients than samples)")
    if min_size * n_clients > n:
        raise PartitionError(
            f"min_size={min_size} per client is unreachable: {n_clients} clients x {min_size} > {n} samples"
        )


def dirichlet_split(
    labels: np.ndarray,
    n_clients: int,
    beta: float,
    seed: int,
    min_size: int = 10,
    max_tries: int = 1000,
    num_classes: int | None = None,
) -> Partition:
    """Dirichlet label-skew split exactly as the reference ``partition_data`` (spec §1.2).

    Per try and per class k: shuffle the class indices, draw p ~ Dir(beta), zero clients that already
    hold >= N/n_clients samples, renormalise, split at ``(cumsum(p)*len)[:-1]``; repeat until every
    client holds >= ``min_size``; finally shuffle each client's list. ``max_tries`` turns the
    reference's unbounded retry loop into a clear error.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not beta > 0:
        raise PartitionError(f"Dirichlet beta must be > 0, got {beta}")
    _check_common(labels, n_clients, min_size)
    k_classes = int(num_classes if num_classes is not None else labels.max() + 1)
    n = len(labels)
    rng = np.random.RandomState(seed)
    cur_min = 0
    tries = 0
    idx_batch: list[list[int]] = [[] for _ in range(n_clients)]
    while cur_min < min_size:
        if tries >= max_tries:
            raise PartitionError(
                f"no Dirichlet(beta={beta}) split of {n} samples over {n_clients} clients gave every client "
                f">= {min_size} samples in {max_tries} tries; lower min_size or n_clients, or raise beta"
            )
        tries += 1
        idx_batch = [[] for _ in range(n_clients)]
        for k in range(k_classes):
            idx_k = np.where(labels == k)[0]
            rng.shuffle(idx_k)
            p = rng.dirichlet(np.repeat(beta, n_clients))
            p = np.array([pj * (len(b) < n / n_clients) for pj, b in zip(p, idx_batch)])
            p = p / p.sum()
            cuts = (np.cumsum(p) * len(idx_k)).astype(int)[:-1]
            idx_batch = [b + part.tolist() for b, part in zip(idx_batch, np.split(idx_k, cuts))]
            cur_min = min(len(b) for b in idx_batch)
    out = []
    for b in idx_batch:
        arr = np.array(b, dtype=np.int64)
        rng.shuffle(arr)
        out.append(arr)
    params = {"n_clients": n_clients, "beta": beta, "seed": seed, "min_size": min_size, "tries": tries}
    return Partition(out, k_classes, "dirichlet", params)


def iid_split(labels: np.ndarray, n_clients: int, seed: int, num_classes: int | None = None) -> Partition:
    """Uniformly random, equal-size (±1) split; the reference's ``iid`` option."""
    labels = np.asarray(labels, dtype=np.int64)
    _check_common(labels, n_clients, 1)
    rng = np.random.RandomState(seed)
    perm = rng.permutation(len(labels))
    parts = [np.sort(p).astype(np.int64) for p in np.array_split(perm, n_clients)]
    k_classes = int(num_classes if num_classes is not None else labels.max() + 1)
    return Partition(parts, k_classes, "iid", {"n_clients": n_clients, "seed": seed})


def stratified_subsample(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Class-stratified subset of indices (sorted) keeping ``fraction`` of each class (data-amount sweeps)."""
    if not 0 < fraction <= 1:
        raise PartitionError(f"data fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    keep = []
    for c in np.unique(labels):
        ix = np.where(labels == c)[0]
        m = max(1, int(round(fraction * len(ix))))
        keep.append(rng.choice(ix, size=m, replace=False))
    return np.sort(np.concatenate(keep))


def partition_summary(p: Partition, labels: np.ndarray) -> str:
    """Short human-readable summary for logs."""
    return json.dumps({"name": p.name, "sizes": p.sizes, "sha256": p.sha256[:12]})

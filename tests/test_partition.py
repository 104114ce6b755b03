"""Partition properties and exact reproduction of the reference Dirichlet algorithm's stream."""

import numpy as np
import pytest

from fedx_bench.errors import PartitionError
from fedx_bench.partition import dirichlet_split, iid_split, stratified_subsample


def _reference_style(labels, n_parties, beta, seed, min_require_size=10):
    """Independent transcription of spec §1.2 using the *global* legacy NumPy stream."""
    np.random.seed(seed)
    n = labels.shape[0]
    min_size = 0
    while min_size < min_require_size:
        batches = [[] for _ in range(n_parties)]
        for k in range(10):
            idx_k = np.where(labels == k)[0]
            np.random.shuffle(idx_k)
            props = np.random.dirichlet(np.repeat(beta, n_parties))
            props = np.array([p * (len(b) < n / n_parties) for p, b in zip(props, batches)])
            props = props / props.sum()
            cut = (np.cumsum(props) * len(idx_k)).astype(int)[:-1]
            batches = [b + s.tolist() for b, s in zip(batches, np.split(idx_k, cut))]
            min_size = min(len(b) for b in batches)
    out = []
    for b in batches:
        np.random.shuffle(b)
        out.append(b)
    return out


LABELS = np.random.default_rng(1).integers(0, 10, size=2000)


@pytest.mark.parametrize("seed,beta,n", [(0, 0.5, 10), (3, 0.1, 5), (7, 5.0, 20)])
def test_dirichlet_equals_reference_stream(seed, beta, n):
    p = dirichlet_split(LABELS, n, beta, seed)
    ref = _reference_style(LABELS, n, beta, seed)
    assert [ix.tolist() for ix in p.client_indices] == [list(map(int, r)) for r in ref]


def test_dirichlet_properties():
    p = dirichlet_split(LABELS, 10, 0.5, 0)
    allix = np.concatenate(p.client_indices)
    assert len(allix) == len(LABELS) and len(np.unique(allix)) == len(LABELS)  # disjoint cover
    assert min(p.sizes) >= 10
    counts = p.class_counts(LABELS)
    assert counts.sum() == len(LABELS)
    assert (counts.sum(axis=0) == np.bincount(LABELS, minlength=10)).all()
    assert p.sha256 == dirichlet_split(LABELS, 10, 0.5, 0).sha256
    assert p.sha256 != dirichlet_split(LABELS, 10, 0.5, 1).sha256
    # small beta is more skewed than large beta
    skew = lambda q: np.mean(q.class_counts(LABELS).max(axis=1) / np.array(q.sizes))  # noqa: E731
    assert skew(dirichlet_split(LABELS, 10, 0.1, 0)) > skew(dirichlet_split(LABELS, 10, 100.0, 0))


def test_impossible_partitions_are_clear_errors():
    with pytest.raises(PartitionError, match="beta"):
        dirichlet_split(LABELS, 10, 0.0, 0)
    with pytest.raises(PartitionError, match="more clients than samples"):
        dirichlet_split(LABELS[:5], 10, 0.5, 0)
    with pytest.raises(PartitionError, match="unreachable"):
        dirichlet_split(LABELS[:50], 10, 0.5, 0, min_size=10)
    with pytest.raises(PartitionError, match="tries"):
        dirichlet_split(LABELS[:200], 19, 0.01, 0, min_size=10, max_tries=5)


def test_iid_and_subsample():
    p = iid_split(LABELS, 7, 0)
    assert sorted(np.concatenate(p.client_indices).tolist()) == list(range(len(LABELS)))
    assert max(p.sizes) - min(p.sizes) <= 1
    sub = stratified_subsample(LABELS, 0.25, 0)
    frac = np.bincount(LABELS[sub], minlength=10) / np.bincount(LABELS, minlength=10)
    assert np.allclose(frac, 0.25, atol=0.01)

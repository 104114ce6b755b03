"""Tests for the evaluation protocols: feature extraction, linear probe (fast vs plain), weighted kNN."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedx_bench.errors import ConfigError
from fedx_bench.evaluation import (
    FINAL,
    PER_ROUND,
    Protocol,
    extract_features,
    get_protocol,
    knn_accuracy,
    linear_probe,
    linear_probe_plain,
    protocol_id,
)
from fedx_bench.evaluation.linear_probe import _epoch_permutation
from fedx_bench.registry import EVALUATIONS

# Largest top-1 gap (percentage points) allowed between the analytic fast engine and the plain
# DataLoader probe on the same features and seed. They share initial weights and batch order and
# differ only by float rounding, so in practice the gap is 0; 0.5 pp leaves room for one flipped
# borderline test sample out of 400.
FAST_VS_PLAIN_TOL_PP = 0.5


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """Tiny matrices: one intra-op thread is as fast and avoids OpenMP stalls on a busy 2-core box."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _blobs(
    n: int, d: int, classes: int, spread: float, seed: int, n_test: int = 400
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian class clusters around unit-variance centres; small ``spread`` -> separable.

    Use data seeds that differ from the probe seed: the probe's generator and this one are both
    mt19937, so equal seeds would make the "random" init correlated with the cluster centres.
    """
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g)
    ytr = torch.randint(0, classes, (n,), generator=g)
    yte = torch.randint(0, classes, (n_test,), generator=g)
    xtr = centres[ytr] + spread * torch.randn(n, d, generator=g)
    xte = centres[yte] + spread * torch.randn(n_test, d, generator=g)
    return xtr, ytr, xte, yte


# ----------------------------------------------------------------------------- linear probe


@pytest.mark.parametrize("batch_size", [7, 10])
def test_epoch_permutation_replays_dataloader_order(batch_size: int) -> None:
    """The fast probe's shuffling must consume the generator exactly like DataLoader(shuffle=True)."""
    n = 100
    g_loader = torch.Generator().manual_seed(11)
    loader = DataLoader(
        TensorDataset(torch.arange(n)), batch_size=batch_size, shuffle=True, generator=g_loader
    )
    g_fast = torch.Generator().manual_seed(11)
    for _ in range(3):
        seen = torch.cat([b[0] for b in loader])
        assert torch.equal(seen, _epoch_permutation(g_fast, n))


def test_autograd_engine_is_bit_identical_to_plain() -> None:
    xtr, ytr, xte, yte = _blobs(600, 32, 10, spread=1.0, seed=101)
    plain = linear_probe_plain(xtr, ytr, xte, yte, epochs=3, seed=4)
    fast = linear_probe(xtr, ytr, xte, yte, epochs=3, seed=4, engine="autograd")
    assert fast == plain  # same init, same batches, same ops: tolerance 0


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_matches_plain(seed: int) -> None:
    # Overlapping clusters so accuracy is informative (neither chance nor 100%); 600 % 64 != 0, so the
    # short last batch is exercised too.
    xtr, ytr, xte, yte = _blobs(600, 32, 10, spread=1.0, seed=100 + seed)
    plain = linear_probe_plain(xtr, ytr, xte, yte, epochs=5, seed=seed)
    fast = linear_probe(xtr, ytr, xte, yte, epochs=5, seed=seed)
    assert 30.0 < plain["top1"] < 95.0 and plain["top5"] < 100.0
    assert abs(fast["top1"] - plain["top1"]) <= FAST_VS_PLAIN_TOL_PP
    assert abs(fast["top5"] - plain["top5"]) <= FAST_VS_PLAIN_TOL_PP


def test_linear_probe_separable_reaches_100() -> None:
    xtr, ytr, xte, yte = _blobs(600, 32, 10, spread=0.1, seed=102)
    res = linear_probe(xtr, ytr, xte, yte, epochs=20)
    assert res["top1"] >= 99.0
    assert res["top5"] == 100.0


def test_linear_probe_random_labels_is_chance() -> None:
    g = torch.Generator().manual_seed(3)
    xtr, xte = torch.randn(600, 32, generator=g), torch.randn(1000, 32, generator=g)
    ytr, yte = torch.randint(0, 10, (600,), generator=g), torch.randint(0, 10, (1000,), generator=g)
    res = linear_probe(xtr, ytr, xte, yte, epochs=5)
    assert 4.0 < res["top1"] < 18.0  # chance is 10%
    assert 35.0 < res["top5"] < 65.0  # chance is 50%


def test_top5_at_least_top1_and_capped_at_num_classes() -> None:
    xtr, ytr, xte, yte = _blobs(600, 32, 3, spread=2.0, seed=105)
    res = linear_probe(xtr, ytr, xte, yte, epochs=3)
    assert res["top5"] >= res["top1"]
    assert res["top5"] == 100.0  # only 3 classes, so top-5 is capped at top-3 and always hits


def test_linear_probe_seeded_and_leaves_global_rng_alone() -> None:
    xtr, ytr, xte, yte = _blobs(600, 32, 5, spread=1.0, seed=106)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = linear_probe(xtr, ytr, xte, yte, epochs=2, seed=7)
    b = linear_probe_plain(xtr, ytr, xte, yte, epochs=2, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    assert a == linear_probe(xtr, ytr, xte, yte, epochs=2, seed=7)
    assert abs(a["top1"] - b["top1"]) <= FAST_VS_PLAIN_TOL_PP


def test_linear_probe_num_classes() -> None:
    xtr, ytr, xte, yte = _blobs(600, 32, 3, spread=0.1, seed=108)
    res = linear_probe(xtr, ytr, xte, yte, epochs=5, num_classes=7)  # unused extra classes are fine
    assert res["top1"] >= 99.0
    with pytest.raises(ValueError, match="num_classes"):
        linear_probe(xtr, ytr, xte, yte, epochs=1, num_classes=2)
    with pytest.raises(ValueError, match="engine"):
        linear_probe(xtr, ytr, xte, yte, epochs=1, engine="nope")


# ----------------------------------------------------------------------------- kNN


def test_knn_hand_computed_example() -> None:
    # Test point along +x. Similarities: a=1.0 (class 0), b=0.8 (class 1), c=0.6 (class 1), d=-1 (class 0).
    # With k=3, d is excluded; class 0 gets exp(1/T), class 1 gets exp(0.8/T) + exp(0.6/T).
    train = torch.tensor([[2.0, 0.0], [0.8, 0.6], [0.6, 0.8], [-3.0, 0.0]])  # norms differ on purpose
    ytr = torch.tensor([0, 1, 1, 0])
    test, yte = torch.tensor([[5.0, 0.0]]), torch.tensor([0])
    for temperature in (0.1, 1.0):
        vote0 = math.exp(1.0 / temperature)
        vote1 = math.exp(0.8 / temperature) + math.exp(0.6 / temperature)
        expected = 100.0 if vote0 > vote1 else 0.0
        got = knn_accuracy(train, ytr, test, yte, k=3, temperature=temperature)
        assert got == {"top1": expected}
    # T=0.1: 22026 vs 3384 -> class 0 (correct); T=1: 2.72 vs 4.05 -> class 1 (majority wins).
    assert knn_accuracy(train, ytr, test, yte, k=3, temperature=0.1)["top1"] == 100.0
    assert knn_accuracy(train, ytr, test, yte, k=3, temperature=1.0)["top1"] == 0.0
    # k=4 adds d (class 0, weight exp(-1)) which cannot overturn T=1's class-1 vote (2.72+0.37 < 4.05).
    assert knn_accuracy(train, ytr, test, yte, k=4, temperature=1.0)["top1"] == 0.0


def test_knn_clusters_and_k_cap() -> None:
    xtr, ytr, xte, yte = _blobs(300, 16, 5, spread=0.1, seed=109)
    assert knn_accuracy(xtr, ytr, xte, yte) == {"top1": 100.0}
    # k larger than the training set is capped, giving the same answer as k = n_train.
    small_x, small_y = xtr[:50], ytr[:50]
    capped = knn_accuracy(small_x, small_y, xte, yte, k=10_000)
    assert capped == knn_accuracy(small_x, small_y, xte, yte, k=50)


def test_knn_chunking_and_small_temperature() -> None:
    xtr, ytr, xte, yte = _blobs(300, 16, 5, spread=1.5, seed=110, n_test=97)
    ref = knn_accuracy(xtr, ytr, xte, yte, k=20)
    for chunk in (1, 13, 97, 4096):
        assert knn_accuracy(xtr, ytr, xte, yte, k=20, chunk_size=chunk) == ref
    # A tiny temperature must not overflow (naive exp(1/0.001) is inf); it approaches 1-NN.
    cold = knn_accuracy(xtr, ytr, xte, yte, k=20, temperature=1e-3)
    assert cold == knn_accuracy(xtr, ytr, xte, yte, k=1)


# ----------------------------------------------------------------------------- features


def _images(n: int, h: int = 4, w: int = 3, c: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, h, w, c), dtype=torch.uint8, generator=g)


MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


@pytest.mark.parametrize(("n", "batch_size"), [(1, 512), (5, 2), (7, 3), (6, 1), (8, 512)])
def test_extract_features_normalises_and_batches(n: int, batch_size: int) -> None:
    images = _images(n)
    manual = images.permute(0, 3, 1, 2).float() / 255.0
    manual = (manual - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    feats = extract_features(nn.Flatten(), images, MEAN, STD, batch_size=batch_size)
    assert feats.shape == (n, 3 * 4 * 3)
    assert feats.dtype == torch.float32
    torch.testing.assert_close(feats, manual.flatten(1))


def test_extract_features_batch_of_one_keeps_batch_dim() -> None:
    # Pooled backbone output is (B, d, 1, 1); a final batch of 1 must still give (1, d), not (d,).
    encoder = nn.Sequential(nn.Conv2d(3, 6, 1), nn.AdaptiveAvgPool2d(1))
    feats = extract_features(encoder, _images(5), MEAN, STD, batch_size=4)  # batches of 4 and 1
    assert feats.shape == (5, 6)
    assert extract_features(encoder, _images(1), MEAN, STD).shape == (1, 6)


def test_extract_features_eval_mode_then_restores_modes() -> None:
    encoder = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten())
    encoder.train()
    encoder[2].eval()  # mixed modes must come back exactly as they were
    stats = encoder[1].running_mean.clone()
    images = _images(6)
    a = extract_features(encoder, images, MEAN, STD, batch_size=4)
    b = extract_features(encoder, images, MEAN, STD, batch_size=6)
    torch.testing.assert_close(a, b)  # eval mode: per-sample, batch-composition independent
    assert torch.equal(encoder[1].running_mean, stats)  # BN statistics untouched
    assert [m.training for m in encoder] == [True, True, False, True]
    assert encoder.training
    assert not a.requires_grad


def test_extract_features_grayscale_and_errors() -> None:
    gray = _images(3, c=1)[..., 0]  # (N, H, W)
    assert extract_features(nn.Flatten(), gray, (0.5,), (0.5,)).shape == (3, 12)
    with pytest.raises(TypeError):
        extract_features(nn.Flatten(), _images(2).float(), MEAN, STD)
    with pytest.raises(ValueError, match="mean/std"):
        extract_features(nn.Flatten(), _images(2), (0.5,), (0.5,))


# ----------------------------------------------------------------------------- registry


def test_protocols_registered_with_versions() -> None:
    """Each protocol is a registry entry that carries its own version, schedule and computation; the registry's
    metadata is derived from it (the versions results record must never change silently)."""
    assert EVALUATIONS.get("linear_probe").compute is linear_probe
    assert EVALUATIONS.get("knn").compute is knn_accuracy
    want = {"linear_probe": ("fedx-v1", PER_ROUND), "knn": ("v1", PER_ROUND), "semi_supervised": ("v1", FINAL),
            "angle": ("v1", PER_ROUND)}
    assert set(want) <= set(EVALUATIONS.names())
    for name, (version, schedule) in want.items():
        entry = get_protocol(name)
        assert isinstance(entry, Protocol) and entry.name == name
        assert (entry.version, entry.schedule) == (version, schedule)
        assert EVALUATIONS.meta(name)["version"] == version
        assert EVALUATIONS.meta(name)["description"] == entry.description != ""
    assert protocol_id("linear_probe") == "linear_probe@fedx-v1"
    assert protocol_id("knn") == "knn@v1"
    with pytest.raises(ConfigError):
        protocol_id("linear_prob")

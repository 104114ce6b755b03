"""A tiny generated dataset so tests and smoke runs need no files on disk.

Each class has its own colour and stripe orientation/frequency, plus random phase, brightness and
noise per image, so a small network (or a linear probe on its features) can learn it, while the
images are not identical copies. Fixed seed: the same arrays on every call and machine.
"""

from __future__ import annotations

import numpy as np

from ..registry import DATASETS
from .datasets import ArrayDataset, check_source, provenance_base

SOURCES = ("auto", "generated")
NUM_CLASSES = 10
SIZE = 32
TRAIN_PER_CLASS = 40
TEST_PER_CLASS = 20
SEED = 0
# Distinct base colours (RGB in [0,1]), one per class.
PALETTE = np.array(
    [
        [0.85, 0.20, 0.20],
        [0.20, 0.70, 0.25],
        [0.20, 0.35, 0.85],
        [0.90, 0.80, 0.15],
        [0.75, 0.25, 0.80],
        [0.15, 0.75, 0.80],
        [0.95, 0.55, 0.15],
        [0.50, 0.50, 0.50],
        [0.55, 0.35, 0.15],
        [0.95, 0.95, 0.95],
    ]
)


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) / SIZE
    angle = labels * (np.pi / NUM_CLASSES)  # class-specific stripe orientation
    freq = 2.0 + (labels % 3) * 1.5  # and frequency
    phase = rng.uniform(0, 2 * np.pi, n)
    proj = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    stripes = np.sin(2 * np.pi * freq[:, None, None] * proj + phase[:, None, None])  # (n, H, W)
    colour = PALETTE[labels] * rng.uniform(0.75, 1.0, (n, 1))  # brightness jitter
    img = 0.55 * colour[:, None, None, :] + 0.3 * stripes[..., None] * colour[:, None, None, :] + 0.2
    img += rng.normal(0, 0.06, img.shape)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def make_synthetic(train_per_class: int = TRAIN_PER_CLASS, test_per_class: int = TEST_PER_CLASS) -> ArrayDataset:
    """Generate the synthetic dataset (10 classes, 32x32x3; 400 train / 200 test by default)."""
    rng = np.random.default_rng(SEED)
    train_y = np.tile(np.arange(NUM_CLASSES, dtype=np.int64), train_per_class)
    test_y = np.tile(np.arange(NUM_CLASSES, dtype=np.int64), test_per_class)
    train_x = _images(train_y, rng)
    test_x = _images(test_y, rng)
    flat = train_x.reshape(-1, 3) / 255.0
    prov = provenance_base(
        "synthetic",
        "generated",
        "(generated in memory)",
        f"synthetic stripes dataset, seed {SEED}: class-specific colour and stripe orientation/frequency",
        seed=SEED,
        train_per_class=train_per_class,
        test_per_class=test_per_class,
        classes=[f"class{c}" for c in range(NUM_CLASSES)],
    )
    return ArrayDataset(
        "synthetic",
        train_x,
        train_y,
        test_x,
        test_y,
        NUM_CLASSES,
        tuple(flat.mean(0)),
        tuple(flat.std(0)),
        prov,
    )


def load_synthetic(
    root: str | None = None,
    source: str = "auto",
    download: bool = False,
    verify_checksums: bool = True,
    grayscale: str = "repeat3",
) -> ArrayDataset:
    """Registry loader: nothing is on disk, so root/download/checksums are ignored."""
    check_source("synthetic", source, SOURCES)
    return make_synthetic()


DATASETS.add(
    "synthetic",
    load_synthetic,
    description="generated 10-class 32x32 RGB stripes, 400 train / 200 test (tests and smoke runs)",
    sources=list(SOURCES),
    num_classes=NUM_CLASSES,
    image_shape=(SIZE, SIZE, 3),
)

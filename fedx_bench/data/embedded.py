"""The CIFAR-10 quickstart subset shipped inside the package (``data.source: embedded``).

8,000 train / 2,000 test images (800 / 200 per class) of the public JPEG copy, stored as the
archive's original JPEG bytes (no re-encoding) in one uncompressed ``.npz``, so the quickstart and
the tests run with no download. Built by ``scripts/build_quickstart_subset.py``; see ``NOTICE.md``
and ``manifest.json`` beside the file for attribution and how it was selected.
"""

from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np

from ..errors import CorruptDataError, DatasetNotFoundError
from .cifar10 import CLASSES, JPEG_COMMIT, JPEG_NOTE, JPEG_REPO, MEAN, NUM_CLASSES, STD, decode_jpegs
from .datasets import ArrayDataset, check_labels, provenance_base

EMBEDDED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "embedded")
BLOB_FILE = "cifar10_quickstart.npz"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
SPLITS = ("train", "test")


def split_blobs(blob: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    """Cut the concatenated JPEG bytes back into one ``bytes`` per image."""
    raw = blob.tobytes()
    return [raw[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


def load_embedded_cifar10(verify_checksums: bool = True, directory: str | None = None) -> ArrayDataset:
    """Decode the embedded subset (about a second); ``verify_checksums`` checks it against its manifest."""
    folder = directory or EMBEDDED_DIR
    path = os.path.join(folder, BLOB_FILE)
    manifest_path = os.path.join(folder, MANIFEST_FILE)
    if not os.path.isfile(path) or not os.path.isfile(manifest_path):
        raise DatasetNotFoundError(
            f"cifar10 embedded subset not found: looked in {path}, {manifest_path}; the installed package is "
            "incomplete: reinstall it or rebuild with scripts/build_quickstart_subset.py"
        )
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        with open(path, "rb") as f:
            data = f.read()
    except (OSError, ValueError) as e:
        raise CorruptDataError(f"{manifest_path}: unreadable ({type(e).__name__}: {e})") from e
    digest = hashlib.sha256(data).hexdigest()
    if verify_checksums and digest != manifest.get("blob_sha256"):
        raise CorruptDataError(
            f"{path} fails its sha256 check against {MANIFEST_FILE}; "
            "set data.verify_checksums: false to load a modified copy"
        )
    arrays: list[np.ndarray] = []
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            for split in SPLITS:
                names = [n.decode("ascii") for n in z[f"{split}_names"].tolist()]
                xs = decode_jpegs(split_blobs(z[f"{split}_jpeg"], z[f"{split}_offsets"]), names, path)
                arrays += [xs, check_labels(z[f"{split}_labels"], NUM_CLASSES, path)]
    except (KeyError, ValueError, OSError) as e:
        raise CorruptDataError(f"{path}: not a valid embedded subset ({type(e).__name__}: {e})") from e
    n_train, n_test = len(arrays[1]), len(arrays[3])
    prov = provenance_base(
        "cifar10",
        "embedded",
        path,
        f"{JPEG_NOTE}; embedded quickstart subset ({n_train} train / {n_test} test), class-stratified, "
        f"original JPEG bytes from {JPEG_REPO} commit {JPEG_COMMIT}; decoded with PIL",
        train_order=manifest.get("train_order", "unknown"),
        test_order=manifest.get("test_order", "unknown"),
        manifest={k: manifest.get(k) for k in ("counts", "selection", "source_archive", "format_version")},
        classes=list(CLASSES),
    )
    prov["files"] = {BLOB_FILE: digest}
    return ArrayDataset("cifar10", arrays[0], arrays[1], arrays[2], arrays[3], NUM_CLASSES, MEAN, STD, prov)

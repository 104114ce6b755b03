#!/usr/bin/env python3
"""Build the embedded CIFAR-10 quickstart subset (``fedx_bench/data/embedded/``) from the JPEG copy.

    python3 scripts/build_quickstart_subset.py --src /path/to/cifar10 --out fedx_bench/data/embedded

``--src`` is the folder holding ``CIFAR-10-images.tar.gz`` (and ideally ``convnetjs/cifar10_labels.js``,
which gives the train images their original order), or the archive itself. For each class the
script ranks that class's files by sha256("<seed>:<split>:<class>:<n>") and keeps the first
800 train / 200 test: a seeded random sample that does not depend on any RNG implementation. The
JPEG bytes are stored exactly as they are in the archive, in an uncompressed ``.npz`` written with
fixed zip timestamps, so a rerun produces byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import zipfile

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from fedx_bench.data.cifar10 import (  # noqa: E402  (needs the repo on sys.path)
    CLASSES,
    JPEG_ARCHIVE,
    JPEG_COMMIT,
    JPEG_REPO,
    LABELS_JS,
    N_TRAIN_LABELS,
    NUM_CLASSES,
    find_labels_js,
    parse_labels_js,
    read_jpeg_copy,
)
from fedx_bench.data.datasets import sha256_file  # noqa: E402
from fedx_bench.data.embedded import (  # noqa: E402
    BLOB_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    load_embedded_cifar10,
)

NOTICE_FILE = "NOTICE.md"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

NOTICE = """\
# Embedded CIFAR-10 quickstart subset: attribution and licence status

`{blob}` holds {n_train:,} training and {n_test:,} test images ({train_pc} / {test_pc} per class) of
CIFAR-10, as the unmodified JPEG files (quality 75) of a public JPEG copy. They are lossy: not the
original pixels.

- **Dataset**: CIFAR-10, by Alex Krizhevsky, Vinod Nair and Geoffrey Hinton. Described in Alex
  Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", technical report, 2009.
  Home page: https://www.cs.toronto.edu/~kriz/cifar.html
- **JPEG copy**: https://{repo}, commit `{commit}`
  (`train/<class>/NNNN.jpg`, `test/<class>/NNNN.jpg`). Archive used: `{archive}`, sha256
  `{archive_sha}`.
- **Licence status**: CIFAR-10 is distributed by its authors without an explicit license, used here
  for research benchmarking.

The subset was selected and packed by `scripts/build_quickstart_subset.py`; `{manifest}` records the
counts, the selection rule, the checksums and the build command.
"""


def rank_key(seed: int, split: str, cls: int, k: int) -> bytes:
    """The seeded sort key that makes the per-class sample (independent of any RNG library)."""
    return hashlib.sha256(f"{seed}:{split}:{CLASSES[cls]}:{k}".encode()).digest()


def original_positions(labels: list[int]) -> dict[tuple[int, int], int]:
    """(class, n) -> position in the label sequence: the k-th image of class c is file number k."""
    seen = [0] * NUM_CLASSES
    pos = {}
    for i, c in enumerate(labels):
        pos[(c, seen[c])] = i
        seen[c] += 1
    return pos


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed .npz (readable by np.load) with fixed zip metadata, so reruns are byte-identical."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            zf.writestr(info, buf.getvalue())


def build(src: str, out: str, train_per_class: int, test_per_class: int, seed: int) -> dict:
    """Select, pack and describe the subset; returns the manifest."""
    archive = src if os.path.isfile(src) else os.path.join(src, JPEG_ARCHIVE)
    if not os.path.isfile(archive):
        raise SystemExit(f"error: {archive} not found")
    labels_path = find_labels_js(os.path.dirname(archive))
    files = read_jpeg_copy(archive)
    labels = parse_labels_js(labels_path) if labels_path else None
    pos = {
        "train": original_positions(labels[:N_TRAIN_LABELS]) if labels else {},
        "test": original_positions(labels[N_TRAIN_LABELS:]) if labels else {},
    }
    arrays: dict[str, np.ndarray] = {}
    per_class = {"train": train_per_class, "test": test_per_class}
    for split in ("train", "test"):
        picked = []  # (class, n)
        for c in range(NUM_CLASSES):
            ks = [k for (s, cc, k) in files if s == split and cc == c]
            if len(ks) < per_class[split]:
                raise SystemExit(f"error: {split}/{CLASSES[c]} has only {len(ks)} images")
            chosen = sorted(ks, key=lambda k, c=c, split=split: rank_key(seed, split, c, k))[: per_class[split]]
            picked += [(c, k) for k in sorted(chosen)]
        orig = np.array([pos[split].get(ck, -1) for ck in picked], np.int64)
        if split == "train" and (orig >= 0).all():
            picked = [ck for _, ck in sorted(zip(orig.tolist(), picked))]  # original relative order
            orig = np.sort(orig)
        blobs = [files[(split, c, k)][1] for c, k in picked]
        arrays[f"{split}_jpeg"] = np.frombuffer(b"".join(blobs), np.uint8)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        arrays[f"{split}_labels"] = np.array([c for c, _ in picked], np.int64)
        arrays[f"{split}_names"] = np.array([files[(split, c, k)][0].encode("ascii") for c, k in picked])
        arrays[f"{split}_orig_index"] = orig

    os.makedirs(out, exist_ok=True)
    blob_path = os.path.join(out, BLOB_FILE)
    write_npz(blob_path, arrays)
    archive_sha = sha256_file(archive)
    train_ordered = bool((arrays["train_orig_index"] >= 0).all())
    options = ""
    if (train_per_class, test_per_class, seed) != (800, 200, 0):
        options = f" --train-per-class {train_per_class} --test-per-class {test_per_class} --seed {seed}"
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset": "cifar10",
        "description": "CIFAR-10 quickstart subset: original JPEG bytes of the public JPEG copy (q75)",
        "blob_file": BLOB_FILE,
        "blob_sha256": sha256_file(blob_path),
        "blob_bytes": os.path.getsize(blob_path),
        "jpeg_bytes": {s: int(arrays[f"{s}_jpeg"].size) for s in ("train", "test")},
        "counts": {
            "train": int(len(arrays["train_labels"])),
            "test": int(len(arrays["test_labels"])),
            "train_per_class": train_per_class,
            "test_per_class": test_per_class,
        },
        "seed": seed,
        "selection": (
            "per split and class: files ranked by sha256('<seed>:<split>:<class>:<n>'), the first "
            "train_per_class / test_per_class kept"
        ),
        "train_order": (
            "original relative order (position in data_batch_1..5, from cifar10_labels.js)"
            if train_ordered
            else "class-major (class, then file number); cifar10_labels.js was not available"
        ),
        "test_order": "class-major (class, then file number); only 1,000 original test positions are known",
        "arrays": {
            "<split>_jpeg": "uint8 concatenation of the JPEG files, unmodified",
            "<split>_offsets": "int64, image i is jpeg[offsets[i]:offsets[i+1]]",
            "<split>_labels": "int64 class index (CIFAR-10 order)",
            "<split>_names": "ASCII bytes: path of the file inside the archive",
            "<split>_orig_index": "int64 position in data_batch_1..5 / test_batch order, -1 if unknown",
        },
        "classes": list(CLASSES),
        "source_archive": {
            "name": os.path.basename(archive),
            "sha256": archive_sha,
            "bytes": os.path.getsize(archive),
            "repository": JPEG_REPO,
            "commit": JPEG_COMMIT,
        },
        "labels_file": {"name": f"convnetjs/{LABELS_JS}", "sha256": sha256_file(labels_path)} if labels_path else None,
        "build_command": (
            "python3 scripts/build_quickstart_subset.py --src <folder holding CIFAR-10-images.tar.gz "
            f"and convnetjs/cifar10_labels.js> --out fedx_bench/data/embedded{options}"
        ),
    }
    with open(os.path.join(out, MANIFEST_FILE), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    notice = NOTICE.format(
        blob=BLOB_FILE,
        n_train=manifest["counts"]["train"],
        n_test=manifest["counts"]["test"],
        train_pc=train_per_class,
        test_pc=test_per_class,
        repo=JPEG_REPO,
        commit=JPEG_COMMIT,
        archive=os.path.basename(archive),
        archive_sha=archive_sha,
        manifest=MANIFEST_FILE,
    )
    with open(os.path.join(out, NOTICE_FILE), "w", encoding="utf-8") as f:
        f.write(notice)
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", required=True, help="folder holding CIFAR-10-images.tar.gz, or the archive")
    ap.add_argument("--out", required=True, help="output folder (fedx_bench/data/embedded)")
    ap.add_argument("--train-per-class", type=int, default=800)
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    manifest = build(args.src, args.out, args.train_per_class, args.test_per_class, args.seed)
    ds = load_embedded_cifar10(directory=args.out)  # check that what we wrote loads
    print(
        f"wrote {os.path.join(args.out, BLOB_FILE)}: {manifest['blob_bytes']:,} bytes, "
        f"{len(ds.train_y)} train / {len(ds.test_y)} test, sha256 {manifest['blob_sha256']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

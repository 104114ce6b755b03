"""SVHN (cropped digits) from torchvision's ``.mat`` files, read by torchvision's own SVHN class.

Only the ``train`` split (73,257) is used for training, as in the reference code; ``extra`` is not.
torchvision maps the file's label 10 (digit 0) to 0, so labels are the digit values 0..9.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from ..errors import CorruptDataError
from ..registry import DATASETS
from .datasets import (
    GET_HINT,
    ArrayDataset,
    check_labels,
    check_source,
    corrupt,
    download_failed,
    not_found,
    provenance_base,
    resolve_root,
    sha256_file,
)

SOURCES = ("auto", "torchvision")
NUM_CLASSES = 10
MEAN = (0.4376821, 0.4437697, 0.47280442)
STD = (0.19803012, 0.20101562, 0.19703614)
SPLITS = ("train", "test")
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}  # torchvision's SVHN.split_list names


@functools.cache
def checked_svhn_class() -> type:
    """torchvision's SVHN, subclassed on first use (importing torchvision takes seconds)."""
    from torchvision.datasets import SVHN
    from torchvision.datasets.utils import check_integrity

    class CheckedSVHN(SVHN):
        """torchvision's SVHN whose md5 check names the failing file and can be switched off."""

        def __init__(self, root: str, split: str, verify: bool) -> None:
            self._verify = verify
            super().__init__(root, split=split, download=False)

        def _check_integrity(self) -> bool:
            path = os.path.join(self.root, self.filename)
            if not os.path.isfile(path):
                return False
            if self._verify and not check_integrity(path, self.file_md5):
                raise CorruptDataError(
                    f"{path} fails its md5 check; set data.verify_checksums: false to load a modified copy"
                )
            return True

    return CheckedSVHN


def _load(folder: str, verify: bool) -> ArrayDataset:
    arrays = []
    for split in SPLITS:
        path = os.path.join(folder, FILES[split])
        try:
            d = checked_svhn_class()(folder, split, verify)
        except CorruptDataError:
            raise
        except Exception as e:  # scipy raises several types for a damaged .mat
            raise corrupt(path, f"not a readable SVHN .mat file ({type(e).__name__}: {e})") from e
        x = np.asarray(d.data)  # torchvision gives (N, 3, 32, 32)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (3, 32, 32):
            raise corrupt(path, f"X is {x.dtype} with images {x.shape[1:]}, expected uint8 32x32x3")
        y = check_labels(np.atleast_1d(np.asarray(d.labels)), NUM_CLASSES, path)
        if len(y) != len(x):
            raise corrupt(path, f"{len(x)} images but {len(y)} labels")
        arrays += [np.ascontiguousarray(x.transpose(0, 2, 3, 1)), y]
    prov = provenance_base(
        "svhn",
        "torchvision",
        folder,
        "SVHN cropped digits (train_32x32.mat / test_32x32.mat) read by torchvision.datasets.SVHN; "
        "label 10 mapped to 0; the extra split is not used",
        md5_verified=bool(verify),
        train_order="original",
        test_order="original",
        classes=[str(d) for d in range(10)],
    )
    prov["files"] = {FILES[s]: sha256_file(os.path.join(folder, FILES[s])) for s in SPLITS}
    return ArrayDataset("svhn", *arrays, NUM_CLASSES, MEAN, STD, prov)


def load_svhn(
    root: str | None = None,
    source: str = "auto",
    download: bool = False,
    verify_checksums: bool = True,
    grayscale: str = "repeat3",
) -> ArrayDataset:
    """Load SVHN from ``root/`` or ``root/svhn/`` (``download`` fetches the .mat files into ``root/``)."""
    check_source("svhn", source, SOURCES)
    base = resolve_root(root)
    looked = []
    for folder in (base, os.path.join(base, "svhn")):
        paths = [os.path.join(folder, FILES[s]) for s in SPLITS]
        looked += paths
        present = [os.path.isfile(p) for p in paths]
        if all(present):
            return _load(folder, verify_checksums)
        if any(present):
            missing = [p for p, ok in zip(paths, present) if not ok]
            raise corrupt(folder, f"incomplete SVHN, missing {', '.join(missing)}")
    if download:
        try:
            from torchvision.datasets import SVHN
            from torchvision.datasets.utils import download_url

            for s in SPLITS:
                url, filename, md5 = SVHN.split_list[s]
                download_url(url, base, filename, md5)
        except Exception as e:  # no network, HTTP error, md5 mismatch after download
            raise download_failed("svhn", base, e) from e
        return _load(base, verify_checksums)
    raise not_found("svhn", looked, f"get it with download: true (needs network), or {GET_HINT}")


DATASETS.add(
    "svhn",
    load_svhn,
    description="SVHN cropped digits (10 classes, 32x32 RGB, 73,257/26,032; extra unused)",
    sources=list(SOURCES),
    num_classes=NUM_CLASSES,
    image_shape=(32, 32, 3),
)

"""Dataset layer: every on-disk format is generated in tmp_path and read through the real loaders."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import pickle
import shutil
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

import fedx_bench.data as data
from fedx_bench.data import cifar10, embedded, fmnist
from fedx_bench.data.datasets import ArrayDataset, stratified_indices
from fedx_bench.errors import ConfigError, CorruptDataError, DatasetNotFoundError
from fedx_bench.registry import DATASETS

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FEDX_BENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep caches in tmp_path, never look at a real data root or the Debian system folder."""
    monkeypatch.setenv("FEDX_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FEDX_BENCH_DATA", raising=False)
    monkeypatch.setattr(fmnist, "SYSTEM_DIRS", [str(tmp_path / "no-system-fmnist")])


# ------------------------------------------------------------------------------------ file writers


def py2_pickle(obj: object) -> bytes:
    """A protocol-2 pickle whose str keys are Python 2 byte strings, as in the official CIFAR files.

    Loaded with ``encoding="bytes"`` the keys are b"data"/b"labels"; torchvision loads with
    ``encoding="latin1"`` and gets "data"/"labels", exactly as with the real files.
    """

    def enc(o: object) -> bytes:
        if isinstance(o, str):
            b = o.encode("latin1")
            return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b
        if isinstance(o, int):
            return b"J" + struct.pack("<i", o)
        if isinstance(o, list):
            return b"](" + b"".join(enc(v) for v in o) + b"e"
        if isinstance(o, dict):
            return b"}(" + b"".join(enc(k) + enc(v) for k, v in o.items()) + b"u"
        if isinstance(o, np.ndarray):
            return pickle.dumps(o, protocol=2)[2:-1]  # strip PROTO and STOP
        raise TypeError(type(o))

    return b"\x80\x02" + enc(obj) + b"."


def write_cifar_pickles(folder: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    out: dict[str, list] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    names = [(f"data_batch_{i}", per_batch, "train") for i in range(1, 6)] + [("test_batch", n_test, "test")]
    for name, n, split in names:
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, n).tolist()
        entry = {"batch_label": name, "labels": y, "data": x.transpose(0, 3, 1, 2).reshape(n, 3072)}
        (folder / name).write_bytes(py2_pickle(entry))
        out[f"{split}_x"].append(x)
        out[f"{split}_y"] += y
    meta = {"num_cases_per_batch": per_batch, "label_names": list(cifar10.CLASSES), "num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return {k: np.concatenate(v) if k.endswith("_x") else np.array(v) for k, v in out.items()}


def write_svhn(folder: Path, n_train: int = 7, n_test: int = 5) -> dict:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        digits = np.arange(n) % 10  # includes the digit 0, stored as label 10
        y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(n, 1)
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x.transpose(1, 2, 3, 0), "y": y})
        out[split] = (x, digits)
    return out


def idx_bytes(arr: np.ndarray) -> bytes:
    """idx/ubyte encoding: magic 0x0000 08 <ndim>, big-endian dims, raw uint8 data (2051 / 2049)."""
    head = b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + np.ascontiguousarray(arr, np.uint8).tobytes()


def write_fmnist(folder: Path, gz: bool, plain: bool, n_train: int = 12, n_test: int = 7) -> dict:
    rng = np.random.default_rng(2)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) * 3 % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for name, arr in arrays.items():
        if plain:
            (folder / name).write_bytes(idx_bytes(arr))
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(arr), mtime=0))
    return arrays


def jpeg(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


# Original (data_batch) order of the tiny JPEG copy: 2-4 images per class, interleaved.
TINY_LABELS = [3, 0, 3, 9, 1, 0, 2, 5, 4, 6, 7, 8, 9, 1, 2, 3, 0, 4, 5, 6, 7, 8, 1, 2]
TINY_TEST = {c: 2 for c in range(10)}


def tiny_colour(i: int, c: int) -> tuple[int, int, int]:
    """A flat colour that survives JPEG: red encodes the original index, green the class."""
    return (10 + 9 * i, 20 + 20 * c, 128)


def write_jpeg_copy(base: Path, labels_js: bool = True, as_tree: bool = False) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    members: dict[str, bytes] = {}
    seen = [0] * 10
    for i, c in enumerate(TINY_LABELS):
        members[f"CIFAR-10-images/train/{cifar10.CLASSES[c]}/{seen[c]:04d}.jpg"] = jpeg(tiny_colour(i, c))
        seen[c] += 1
    for c, n in TINY_TEST.items():
        for k in range(n):
            members[f"CIFAR-10-images/test/{cifar10.CLASSES[c]}/{k:04d}.jpg"] = jpeg((200, 20 + 20 * c, 10 + k))
    members["CIFAR-10-images/README.md"] = b"# CIFAR-10 images\n"
    if as_tree:
        for name, blob in members.items():
            (base / name).parent.mkdir(parents=True, exist_ok=True)
            (base / name).write_bytes(blob)
        target = base / "CIFAR-10-images"
    else:
        target = base / "CIFAR-10-images.tar.gz"
        with tarfile.open(target, "w:gz") as tf:
            for name in sorted(members):  # sorted: test/ before train/, as in the real archive
                info = tarfile.TarInfo(name)
                info.size = len(members[name])
                tf.addfile(info, io.BytesIO(members[name]))
    if labels_js:
        (base / "convnetjs").mkdir(exist_ok=True)
        test_labels = [c for c in range(10) for _ in range(TINY_TEST[c])]
        js = "var labels=[" + ", ".join(str(v) for v in TINY_LABELS + test_labels) + "];\n"
        (base / "convnetjs" / "cifar10_labels.js").write_text(js)
    return target


# -------------------------------------------------------------------------------- registry and API


def test_registry_lists_the_datasets_and_sources() -> None:
    assert {"cifar10", "fmnist", "svhn", "synthetic"} <= set(DATASETS.names())
    assert data.dataset_sources("cifar10") == [
        "auto",
        "torchvision",
        "jpeg-copy",
        "lossless-subset",
        "embedded",
    ]
    assert "debian" in data.dataset_sources("fmnist")


def test_unknown_name_source_and_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="cifar10"):
        data.load_dataset("cifar-10")
    with pytest.raises(ConfigError, match="jpeg-copy"):
        data.load_dataset("cifar10", source="jpeg")
    with pytest.raises(ConfigError, match="grayscale"):
        data.load_dataset("synthetic", grayscale="rgb")
    with pytest.raises(ConfigError, match="train_limit"):
        data.load_dataset("synthetic", train_limit=0)


def test_default_data_root_respects_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FEDX_BENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_data_root() == str(tmp_path / "xdg" / "fedx-bench" / "data")
    monkeypatch.setenv("FEDX_BENCH_DATA", str(tmp_path / "d"))
    assert data.default_data_root() == str(tmp_path / "d")


def test_array_dataset_validates() -> None:
    x = np.zeros((2, 8, 8, 3), np.uint8)
    y = np.zeros(2, np.int64)
    ds = ArrayDataset("t", x, y, x, y, 10, (0.5,) * 3, (0.2,) * 3, {})
    assert ds.channels == 3 and "train=(2, 8, 8, 3)" in repr(ds)
    with pytest.raises(ValueError):
        ArrayDataset("t", x.astype(np.float32), y, x, y, 10, (0.5,) * 3, (0.2,) * 3, {})
    with pytest.raises(ValueError):
        ArrayDataset("t", x, y, x, y, 10, (0.5,), (0.2,), {})


# ----------------------------------------------------------------------------------------- CIFAR


def test_cifar_pickles_round_trip_through_torchvision(tmp_path: Path) -> None:
    want = write_cifar_pickles(tmp_path / "cifar10" / "cifar-10-batches-py")
    with open(tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        assert b"data" in pickle.load(f, encoding="bytes")  # the official files' key type
    ds = data.load_dataset("cifar10", root=str(tmp_path), verify_checksums=False)
    assert ds.provenance["source"] == "torchvision"
    assert ds.train_x.shape == (20, 32, 32, 3) and ds.test_x.shape == (6, 32, 32, 3)
    assert ds.train_x.dtype == np.uint8 and ds.train_y.dtype == np.int64
    np.testing.assert_array_equal(ds.train_x, want["train_x"])
    np.testing.assert_array_equal(ds.train_y, want["train_y"])
    np.testing.assert_array_equal(ds.test_x, want["test_x"])
    np.testing.assert_array_equal(ds.test_y, want["test_y"])
    assert ds.mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255))
    json.dumps(ds.provenance)


def test_cifar_md5_check_rejects_generated_pickles(tmp_path: Path) -> None:
    write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    with pytest.raises(CorruptDataError, match=r"data_batch_1 fails its md5 check.*verify_checksums: false"):
        data.load_dataset("cifar10", root=str(tmp_path))


def test_cifar_corrupt_and_incomplete_pickles(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_pickles(folder)
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:200])
    with pytest.raises(CorruptDataError, match="data_batch_3") as e:
        data.load_dataset("cifar10", root=str(tmp_path), verify_checksums=False)
    assert "\n" not in str(e.value)
    (folder / "test_batch").unlink()
    with pytest.raises(CorruptDataError, match="missing test_batch"):
        data.load_dataset("cifar10", root=str(tmp_path), source="torchvision", verify_checksums=False)


def test_jpeg_copy_restores_original_train_order(tmp_path: Path) -> None:
    write_jpeg_copy(tmp_path / "cifar10")
    ds = data.load_dataset("cifar10", root=str(tmp_path))  # auto: no pickles, so the JPEG copy
    prov = ds.provenance
    assert prov["source"] == "jpeg-copy" and "JPEG copy" in prov["notes"]
    assert prov["train_order"].startswith("original") and prov["matches_reference"] is False
    assert ds.train_x.shape == (len(TINY_LABELS), 32, 32, 3) and ds.train_x.dtype == np.uint8
    np.testing.assert_array_equal(ds.train_y, TINY_LABELS)
    red = ds.train_x[..., 0].reshape(len(ds.train_x), -1).mean(1)
    np.testing.assert_allclose(red, [10 + 9 * i for i in range(len(TINY_LABELS))], atol=3)
    np.testing.assert_array_equal(ds.test_y, [c for c in range(10) for _ in range(TINY_TEST[c])])
    assert prov["cache"]["state"] == "written"
    again = data.load_dataset("cifar10", root=str(tmp_path), source="jpeg-copy")
    assert again.provenance["cache"]["state"] == "hit"
    np.testing.assert_array_equal(again.train_x, ds.train_x)
    json.dumps(prov)


def test_jpeg_copy_without_labels_is_class_major_and_tree_works(tmp_path: Path) -> None:
    write_jpeg_copy(tmp_path, labels_js=False, as_tree=True)
    ds = data.load_dataset("cifar10", root=str(tmp_path), source="jpeg-copy")
    assert ds.provenance["path"].endswith("CIFAR-10-images") and "class-major" in ds.provenance["train_order"]
    np.testing.assert_array_equal(ds.train_y, sorted(TINY_LABELS))
    green = ds.train_x[..., 1].reshape(len(ds.train_x), -1).mean(1)
    np.testing.assert_allclose(green, [20 + 20 * c for c in sorted(TINY_LABELS)], atol=3)


def test_jpeg_copy_label_mismatch_and_corrupt_archive(tmp_path: Path) -> None:
    write_jpeg_copy(tmp_path)
    (tmp_path / "convnetjs" / "cifar10_labels.js").write_text("var labels=[" + "0, " * 30 + "0];")
    with pytest.raises(CorruptDataError, match="label file"):
        data.load_dataset("cifar10", root=str(tmp_path), source="jpeg-copy")
    (tmp_path / "CIFAR-10-images.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(CorruptDataError, match=r"CIFAR-10-images\.tar\.gz"):
        data.load_dataset("cifar10", root=str(tmp_path), source="jpeg-copy")


def test_jpeg_cache_failure_is_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jpeg_copy(tmp_path)
    (tmp_path / "not-a-dir").write_text("x")
    monkeypatch.setenv("FEDX_BENCH_CACHE", str(tmp_path / "not-a-dir"))
    with pytest.warns(UserWarning, match="cache"):
        ds = data.load_dataset("cifar10", root=str(tmp_path))
    assert ds.provenance["cache"]["state"] == "unwritable" and len(ds.train_y) == len(TINY_LABELS)


def test_lossless_subset_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    folder = tmp_path / "convnetjs"
    folder.mkdir()
    strips = {n: rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8) for n in cifar10.LOSSLESS_TRAIN}
    strips[cifar10.LOSSLESS_TEST] = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    for name, x in strips.items():
        Image.fromarray(x.reshape(5, 1024, 3)).save(folder / name)
    labels = rng.integers(0, 10, 50_005).tolist()
    (folder / "cifar10_labels.js").write_text("var labels=[" + ", ".join(map(str, labels)) + "];")
    ds = data.load_dataset("cifar10", root=str(tmp_path), source="lossless-subset")
    np.testing.assert_array_equal(ds.train_x, np.concatenate([strips[n] for n in cifar10.LOSSLESS_TRAIN]))
    np.testing.assert_array_equal(ds.test_x, strips[cifar10.LOSSLESS_TEST])
    np.testing.assert_array_equal(ds.train_y, labels[:20])
    np.testing.assert_array_equal(ds.test_y, labels[50_000:])


def test_cifar_missing_is_one_line_naming_paths(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as e:
        data.load_dataset("cifar10", root=str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("cifar10 not found")
    for p in ("cifar-10-batches-py", "cifar10/cifar-10-batches-py", "CIFAR-10-images.tar.gz"):
        assert str(tmp_path / p) in msg
    assert "download: true" in msg and "FEDX_BENCH_DATA" in msg


def test_failed_download_becomes_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tvu
    from torchvision.datasets import FashionMNIST

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    monkeypatch.setattr(tvu, "download_url", offline)
    monkeypatch.setattr(FashionMNIST, "download", lambda self: (_ for _ in ()).throw(RuntimeError("offline")))
    for name in ("cifar10", "svhn", "fmnist"):
        with pytest.raises(DatasetNotFoundError, match="download into .* failed") as e:
            data.load_dataset(name, root=str(tmp_path / name), download=True)
        assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ SVHN


def test_svhn_mat_round_trip_and_label_10_is_0(tmp_path: Path) -> None:
    want = write_svhn(tmp_path / "svhn")
    ds = data.load_dataset("svhn", root=str(tmp_path), verify_checksums=False)
    assert ds.train_x.shape == (7, 32, 32, 3) and ds.train_x.dtype == np.uint8
    assert ds.train_x.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(ds.train_x, want["train"][0])
    np.testing.assert_array_equal(ds.train_y, want["train"][1])
    np.testing.assert_array_equal(ds.test_x, want["test"][0])
    assert ds.train_y[0] == 0 and ds.train_y.dtype == np.int64
    json.dumps(ds.provenance)


def test_svhn_checksum_corrupt_and_missing(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    with pytest.raises(CorruptDataError, match="train_32x32.mat fails its md5 check"):
        data.load_dataset("svhn", root=str(tmp_path))
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 garbage" * 10)
    with pytest.raises(CorruptDataError, match="test_32x32.mat"):
        data.load_dataset("svhn", root=str(tmp_path), verify_checksums=False)
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "empty" / "svhn" / "train_32x32.mat")):
        data.load_dataset("svhn", root=str(tmp_path / "empty"))


# ------------------------------------------------------------------------------------ Fashion-MNIST


def test_fmnist_torchvision_layout_both_channel_modes(tmp_path: Path) -> None:
    want = write_fmnist(tmp_path / "fashion-mnist" / "FashionMNIST" / "raw", gz=False, plain=True)
    ds = data.load_dataset("fmnist", root=str(tmp_path))
    assert ds.train_x.shape == (12, 28, 28, 3) and ds.mean == (0.2860,) * 3 and ds.std == (0.3530,) * 3
    for c in range(3):
        np.testing.assert_array_equal(ds.train_x[..., c], want["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.train_y, want["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.test_y, want["t10k-labels-idx1-ubyte"])
    single = data.load_dataset("fmnist", root=str(tmp_path), grayscale="single")
    assert single.train_x.shape == (12, 28, 28, 1) and single.channels == 1 and single.mean == (0.2860,)
    np.testing.assert_array_equal(single.test_x[..., 0], want["t10k-images-idx3-ubyte"])
    assert ds.provenance["matches_reference"] is False
    json.dumps(ds.provenance)


def test_fmnist_debian_gz_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    want = write_fmnist(system, gz=True, plain=False)
    monkeypatch.setattr(fmnist, "SYSTEM_DIRS", [str(system)])
    ds = data.load_dataset("fmnist", root=str(tmp_path / "empty-root"))
    assert ds.provenance["source"] == "debian" and ds.provenance["path"] == str(system)
    assert ds.provenance["decompressed_to"].startswith(str(tmp_path / "cache"))
    assert "train-images-idx3-ubyte.gz" in ds.provenance["files"]
    np.testing.assert_array_equal(ds.train_x[..., 0], want["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test_y, want["t10k-labels-idx1-ubyte"])
    assert sorted(os.listdir(system)) == sorted(f"{f}.gz" for f in fmnist.FILES)  # source left untouched
    again = data.load_dataset("fmnist", root=str(tmp_path / "empty-root"), source="debian")
    np.testing.assert_array_equal(again.train_x, ds.train_x)


def test_fmnist_gz_only_torchvision_layout_and_corrupt_files(tmp_path: Path) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    write_fmnist(raw, gz=True, plain=False)
    ds = data.load_dataset("fmnist", root=str(tmp_path), source="torchvision")
    assert len(ds.train_y) == 12 and ds.provenance["path"] == str(raw)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    shutil.rmtree(tmp_path / "cache")
    with pytest.raises(CorruptDataError, match="t10k-labels-idx1-ubyte.gz"):
        data.load_dataset("fmnist", root=str(tmp_path))
    plain = tmp_path / "plain"
    write_fmnist(plain / "FashionMNIST" / "raw", gz=False, plain=True)
    (plain / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x00\x00" * 4)
    with pytest.raises(CorruptDataError, match="train-labels-idx1-ubyte") as e:
        data.load_dataset("fmnist", root=str(plain))
    assert "\n" not in str(e.value)


def test_fmnist_missing_names_every_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as e:
        data.load_dataset("fmnist", root=str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg
    assert str(tmp_path / "FashionMNIST" / "raw") in msg
    assert str(tmp_path / "fashion-mnist" / "FashionMNIST" / "raw") in msg
    assert str(tmp_path / "no-system-fmnist") in msg


# --------------------------------------------------------------------------- synthetic, train_limit


def test_synthetic_is_deterministic_and_learnable() -> None:
    a = data.load_dataset("synthetic")
    b = data.load_dataset("synthetic", root="/nonexistent")
    np.testing.assert_array_equal(a.train_x, b.train_x)
    assert a.train_x.shape == (400, 32, 32, 3) and a.test_x.shape == (200, 32, 32, 3)
    assert np.bincount(a.train_y).tolist() == [40] * 10 and np.bincount(a.test_y).tolist() == [20] * 10
    centroids = np.stack([a.train_x[a.train_y == c].reshape(40, -1).mean(0) for c in range(10)])
    dist = ((a.test_x.reshape(200, 1, -1).astype(float) - centroids[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == a.test_y).mean() > 0.9  # a nearest-centroid classifier learns it
    json.dumps(a.provenance)


def test_train_limit_is_stratified_and_deterministic() -> None:
    ds = data.load_dataset("synthetic", train_limit=100)
    assert np.bincount(ds.train_y).tolist() == [10] * 10
    limit = ds.provenance["train_limit"]
    assert (limit["requested"], limit["kept"], limit["of"], limit["seed"]) == (100, 100, 400, 0)
    again = data.load_dataset("synthetic", train_limit=100)
    np.testing.assert_array_equal(ds.train_x, again.train_x)
    odd = data.load_dataset("synthetic", train_limit=37)
    assert len(odd.train_y) == 37 and set(np.bincount(odd.train_y)) <= {3, 4}
    assert len(data.load_dataset("synthetic", train_limit=10_000).train_y) == 400
    y = np.array([0] * 90 + [1] * 10)
    idx = stratified_indices(y, 20)
    assert np.bincount(y[idx]).tolist() == [18, 2] and (np.diff(idx) > 0).all()


# -------------------------------------------------------------------------------------- embedded


@pytest.fixture(scope="module")
def embedded_ds() -> ArrayDataset:
    return data.load_dataset("cifar10", source="embedded")


def test_embedded_subset_loads_balanced(embedded_ds: ArrayDataset) -> None:
    ds = embedded_ds
    assert ds.train_x.shape == (8000, 32, 32, 3) and ds.test_x.shape == (2000, 32, 32, 3)
    assert np.bincount(ds.train_y).tolist() == [800] * 10 and np.bincount(ds.test_y).tolist() == [200] * 10
    notes = ds.provenance["notes"]
    assert "JPEG copy" in notes and "embedded quickstart subset (8000 train / 2000 test)" in notes
    manifest = json.loads((Path(embedded.EMBEDDED_DIR) / "manifest.json").read_text())
    assert ds.provenance["files"]["cifar10_quickstart.npz"] == manifest["blob_sha256"]
    assert (Path(embedded.EMBEDDED_DIR) / "NOTICE.md").read_text().count("without an explicit license") == 1
    json.dumps(ds.provenance)


def test_embedded_tampering_is_detected(tmp_path: Path) -> None:
    copy = tmp_path / "embedded"
    shutil.copytree(embedded.EMBEDDED_DIR, copy)
    blob = bytearray((copy / embedded.BLOB_FILE).read_bytes())
    blob[-100] ^= 0xFF
    (copy / embedded.BLOB_FILE).write_bytes(bytes(blob))
    with pytest.raises(CorruptDataError, match="sha256"):
        embedded.load_embedded_cifar10(directory=str(copy))


def test_build_script_is_byte_identical_on_rerun(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("build_qs", REPO / "scripts" / "build_quickstart_subset.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    write_jpeg_copy(tmp_path / "src")
    for out in ("a", "b"):
        mod.main(
            ["--src", str(tmp_path / "src"), "--out", str(tmp_path / out), "--train-per-class", "2"]
            + ["--test-per-class", "1"]
        )
    for name in (embedded.BLOB_FILE, "manifest.json", "NOTICE.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    ds = embedded.load_embedded_cifar10(directory=str(tmp_path / "a"))
    assert np.bincount(ds.train_y).tolist() == [2] * 10 and len(ds.test_y) == 10
    # Train images keep their original relative order: red encodes the original index.
    red = ds.train_x[..., 0].reshape(len(ds.train_x), -1).mean(1)
    assert (np.diff(red) > 0).all()
    with np.load(tmp_path / "a" / embedded.BLOB_FILE) as z:  # bytes stored unmodified
        first = z["train_jpeg"][z["train_offsets"][0] : z["train_offsets"][1]].tobytes()
        name = z["train_names"][0].decode()
    with tarfile.open(tmp_path / "src" / "CIFAR-10-images.tar.gz") as tf:
        assert tf.extractfile(name).read() == first


# -------------------------------------------------------------------------- real data (if present)


@needs_shared
def test_real_fmnist() -> None:
    ds = data.load_dataset("fmnist", root=str(SHARED))
    assert len(ds.train_y) == 60_000 and len(ds.test_y) == 10_000
    assert ds.train_y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert ds.test_y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert ds.provenance["matches_reference"] is True
    assert abs(ds.train_x[..., 0].mean() / 255 - 0.2860) < 1e-3


@needs_shared
def test_real_cifar_lossless_subset_and_embedded_agree(embedded_ds: ArrayDataset) -> None:
    ll = data.load_dataset("cifar10", root=str(SHARED), source="lossless-subset")
    assert ll.train_x.shape == (4000, 32, 32, 3) and ll.test_x.shape == (1000, 32, 32, 3)
    assert ll.train_y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert ll.test_y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert ll.provenance["matches_reference"] is True
    # Embedded train images whose original position is < 4000 must be those exact images, JPEG'd.
    with np.load(Path(embedded.EMBEDDED_DIR) / embedded.BLOB_FILE) as z:
        orig = z["train_orig_index"]
    assert (np.diff(orig) > 0).all()
    sel = np.flatnonzero(orig < 4000)
    assert len(sel) > 400
    np.testing.assert_array_equal(embedded_ds.train_y[sel], ll.train_y[orig[sel]])
    mse = ((embedded_ds.train_x[sel].astype(float) - ll.train_x[orig[sel]]) ** 2).reshape(len(sel), -1).mean(1)
    psnr = 10 * np.log10(255**2 / mse)
    assert psnr.min() > 20 and psnr.mean() > 28


@needs_shared
def test_embedded_bytes_are_the_archive_bytes() -> None:
    with np.load(Path(embedded.EMBEDDED_DIR) / embedded.BLOB_FILE) as z:
        names = [n.decode() for n in z["test_names"].tolist()]
        blobs = embedded.split_blobs(z["test_jpeg"], z["test_offsets"])
    want = {n: b for n, b in zip(names, blobs) if "/test/airplane/" in n}
    got = {}
    with tarfile.open(SHARED / "cifar10" / "CIFAR-10-images.tar.gz") as tf:
        for m in tf:  # test/airplane comes first in the archive: stop once past it
            if "/test/airplane/" in m.name:
                got[m.name] = tf.extractfile(m).read()
            elif got:
                break
    assert len(want) == 200 and all(got[n] == b for n, b in want.items())

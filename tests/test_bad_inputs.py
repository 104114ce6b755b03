"""Every bad input a user can give gets one line naming the problem (file and key where there is one), exit
code 2, no traceback, and nothing written under the results directory. One table, one test.

Each case builds its input in a fresh tmp dir and returns the argv; the check is the same for all of them.
"""

from __future__ import annotations

import copy
import gzip
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from fedx_bench.cli import main

TINY = {
    "name": "tiny",
    "base": {
        "dataset": {"name": "synthetic", "train_limit": 200},
        "model": {"backbone": "cnn4", "width": 4},
        "federation": {"clients": 2, "rounds": 1, "local_epochs": 1, "min_size": 2},
        "optim": {"batch_size": 16},
        "eval": {"probe_epochs": 1, "knn_k": 5},
    },
    "grid": {"fedx": [False, True], "seed": [0]},
}


def _suite(tmp: Path, patch: dict | None = None, raw: bytes | str | None = None, name: str = "s.yaml") -> str:
    p = tmp / name
    if raw is not None:
        p.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    else:
        doc = copy.deepcopy(TINY)
        for k, v in (patch or {}).items():  # dotted keys into the suite document
            cur = doc
            parts = k.split(".")
            for q in parts[:-1]:
                cur = cur.setdefault(q, {})
            cur[parts[-1]] = v
        p.write_text(yaml.safe_dump(doc))
    return str(p)


def run_args(*extra: str, patch: dict | None = None, raw: bytes | str | None = None) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        return ["run", _suite(tmp, patch, raw), "--results", str(tmp / "res"), "--quiet", *extra]
    return build


def argv(*a: str) -> Callable[[Path], list[str]]:
    return lambda tmp: [x.replace("{tmp}", str(tmp)) for x in a]


def _truncated_cifar(tmp: Path) -> list[str]:
    root = tmp / "data"
    root.mkdir()
    data = gzip.compress(b"x" * 4096)
    (root / "CIFAR-10-images.tar.gz").write_bytes(data[: len(data) // 2])  # cut mid-stream
    s = _suite(tmp, {"base.dataset": {"name": "cifar10", "source": "jpeg-copy"}})
    return ["run", s, "--results", str(tmp / "res"), "--data-root", str(root), "--quiet"]


def _corrupt_run_dir(tmp: Path, what: str) -> Path:
    rd = tmp / "store" / "runs" / "0123456789abcdef"
    rd.mkdir(parents=True)
    (rd / "spec.json").write_text('{"label": "x", "config": ' if what == "truncated" else "[1, 2, 3]")
    (rd / "status.json").write_text('{"state": "done"}')
    (rd / "eval.json").write_text("[]" if what == "shape" else "{")
    return tmp / "store"


def _report_corrupt(tmp: Path) -> list[str]:
    return ["report", str(_corrupt_run_dir(tmp, "shape")), "--no-files"]


def _collect_corrupt(tmp: Path) -> list[str]:
    return ["collect", "--results", str(_corrupt_run_dir(tmp, "shape")), "--out", str(tmp / "x")]


def _compare_corrupt(tmp: Path) -> list[str]:
    store = _corrupt_run_dir(tmp, "shape")
    return ["compare", "--baseline", str(store), "--new", str(store)]


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
FEW_GPUS = pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.device_count() > 7, reason="has a GPU 7")
# (id, argv builder, words the one line must contain)
CASES = [
    ("missing-file", argv("run", "{tmp}/nope.yaml", "--results", "{tmp}/res"), ["not found", "nope.yaml"]),
    ("directory-as-suite", argv("run", "{tmp}", "--results", "{tmp}/res"), ["is a directory"]),
    ("empty-yaml", run_args(raw=""), ["s.yaml", "empty"]),
    ("yaml-list", run_args(raw="- base: {}\n- grid: {}\n"), ["s.yaml", "mapping", "list"]),
    ("broken-syntax", run_args(raw="base: [1, 2\ngrid: {"), ["s.yaml", "invalid YAML"]),
    ("non-utf8", run_args(raw=b"name: caf\xe9\xff\xfe\n"), ["s.yaml", "UTF-8"]),
    ("unknown-top-key", run_args(patch={"bse": {}}), ["s.yaml", "'bse'", "did you mean 'base'"]),
    ("unknown-nested-key", run_args(patch={"base.federation.roundz": 2}), ["federation.roundz", "rounds"]),
    ("wrong-type", run_args(patch={"base.federation.clients": "ten"}), ["federation.clients", "integer"]),
    ("clients-0", run_args(patch={"base.federation.clients": 0}), ["federation.clients", ">= 1"]),
    ("clients-negative", run_args(patch={"base.federation.clients": -3}), ["federation.clients"]),
    ("rounds-0", run_args(patch={"base.federation.rounds": 0}), ["federation.rounds", ">= 1"]),
    ("rounds-negative", run_args(patch={"base.federation.rounds": -1}), ["federation.rounds"]),
    ("beta-0", run_args(patch={"base.federation.beta": 0}), ["federation.beta", "> 0"]),
    ("beta-negative", run_args(patch={"base.federation.beta": -0.5}), ["federation.beta"]),
    ("lr-0", run_args(patch={"base.optim.lr": 0}), ["optim.lr", "> 0"]),
    ("lr-inf", run_args(raw=yaml.safe_dump(TINY).replace("batch_size: 16", "batch_size: 16\n    lr: .inf")),
     ["optim.lr", "finite"]),
    ("lr-negative", run_args(patch={"base.optim.lr": -0.1}), ["optim.lr"]),
    ("batch-size-0", run_args(patch={"base.optim.batch_size": 0}), ["optim.batch_size"]),
    ("batch-size-1e5", run_args(patch={"base.optim.batch_size": 100000}), ["optim.batch_size", "<="]),
    ("local-epochs-0", run_args(patch={"base.federation.local_epochs": 0}), ["federation.local_epochs"]),
    ("sample-fraction-0", run_args(patch={"base.federation.sample_fraction": 0}), ["federation.sample_fraction"]),
    ("sample-fraction-1.5", run_args(patch={"base.federation.sample_fraction": 1.5}), ["federation.sample_fraction"]),
    ("momentum-5", run_args(patch={"base.optim.momentum": 5}), ["optim.momentum"]),
    ("negative-temperature", run_args(patch={"base.fedx": {"enabled": True, "temperature": -0.1}}),
     ["fedx.temperature"]),
    ("negative-method-temperature", run_args(patch={"base.method_args": {"temperature": -1.0}}),
     ["method_args.temperature"]),
    ("proj-dim-0", run_args(patch={"base.model.proj_dim": 0}), ["model.proj_dim"]),
    ("head-dim-mismatch", run_args(patch={"base.fedx": {"enabled": True, "head_dim": 128}}),
     ["fedx.head_dim", "model.proj_dim"]),
    ("more-clients-than-samples", run_args(patch={"base.federation.clients": 500}),
     ["s.yaml", "federation", "more clients than samples"]),
    ("data-fraction-0", run_args(patch={"base.dataset.fraction": 0}), ["data.fraction"]),
    ("unknown-method", run_args(patch={"base.method": "simclrr"}), ["simclrr"]),
    ("unknown-dataset", run_args(patch={"base.dataset.name": "imagenet"}), ["imagenet"]),
    ("unknown-fedx-variant", run_args(patch={"grid.fedx": ["fedx-nope"]}), ["fedx.variant", "fedx-nope"]),
    ("unknown-backbone", run_args(patch={"base.model.backbone": "vgg"}), ["vgg"]),
    ("unknown-protocol", run_args(patch={"base.eval.protocols": ["linear_probe", "svm"]}), ["svm"]),
    ("plugin-no-module", run_args(patch={"base.method": "no_such_mod:Cls"}), ["no_such_mod"]),
    ("plugin-not-a-method", run_args(patch={"base.method": "os:system"}), ["os:system"]),
    ("yaml-device-tpu", run_args(patch={"base.device": "tpu"}), ["device", "tpu"]),
    ("grid-not-a-list", run_args(patch={"grid.seed": 3}), ["grid.seed", "list"]),
    ("cases-not-mappings", run_args(patch={"cases": ["cifar10"]}), ["cases"]),
    ("grid-1e4", run_args(patch={"grid": {"seed": list(range(10000))}}), ["10,000 runs", "--max-runs"]),
    ("grid-1e6", run_args(patch={"grid": {"eval.knn_k": list(range(1, 101)), "seed": list(range(100)),
                                          "federation.clients": list(range(1, 101))}}), ["1,000,000 runs"]),
    ("set-no-equals", run_args("--set", "federation.rounds"), ["--set", "KEY=VALUE"]),
    ("set-unknown-key", run_args("--set", "federation.roundz=2"), ["--set", "federation.roundz"]),
    ("set-bad-value", run_args("--set", "seed=banana"), ["--set seed", "integer"]),
    ("set-bad-variant", run_args("--set", "fedx=sometimes"), ["fedx.variant", "sometimes"]),
    ("set-bad-yaml", run_args("--set", "seed=[1"), ["--set seed", "YAML"]),
    ("set-rounds-0", run_args("--set", "federation.rounds=0"), ["federation.rounds"]),
    ("sweep-bad-value", run_args("--sweep", "seed=0,x"), ["--sweep seed", "integer"]),
    ("device-nonsense", run_args("--device", "nonsense"), ["--device", "nonsense"]),
    pytest.param("device-cuda-without-cuda", run_args("--device", "cuda"), ["--device cuda", "CUDA"],
                 marks=NO_CUDA),
    ("jobs-0", run_args("--jobs", "0"), ["--jobs"]),
    pytest.param("devices-7", run_args("--devices", "7", "--jobs", "2"), ["cuda:7"], marks=FEW_GPUS),
    ("threads-per-run-0", run_args("--threads-per-run", "0"), ["--threads-per-run"]),
    ("max-runs-0", run_args("--max-runs", "0"), ["--max-runs"]),
    ("missing-data-root", run_args("--data-root", "/nonexistent/fedx-data"), ["--data-root", "/nonexistent"]),
    ("truncated-dataset-file", _truncated_cifar, ["CIFAR-10-images.tar.gz"]),
    ("dask-unreachable", run_args("--backend", "dask", "--scheduler-address", "tcp://127.0.0.1:9"),
     ["--scheduler-address", "127.0.0.1:9"]),
    ("status-missing-dir", argv("status", "--results", "{tmp}/nope"), ["not found", "nope"]),
    ("status-missing-dir-positional", argv("status", "{tmp}/nope"), ["not found", "nope"]),
    ("status-unknown-suite", lambda t: ["status", "--results", str(_corrupt_run_dir(t, "truncated")),
                                        "--suite", "nope"], ["nope"]),
    ("collect-missing-dir", argv("collect", "{tmp}/nope"), ["not found", "nope"]),
    ("collect-out-missing-folder", lambda t: ["collect", "--results", str(_corrupt_run_dir(t, "truncated")),
                                              "--out", str(t / "no" / "such" / "x")], ["--out", "does not exist"]),
    ("compare-missing-dir", argv("compare", "--baseline", "{tmp}/nope", "--new", "{tmp}/nope"), ["not found"]),
    ("report-missing-dir", argv("report", "{tmp}/nope", "--no-files"), ["nope"]),
]


PARAMS = [c if hasattr(c, "values") else pytest.param(*c) for c in CASES]
NAMES = [c.values[0] for c in PARAMS]


@pytest.mark.parametrize("name,build,words", PARAMS, ids=NAMES)
def test_bad_input_one_line_exit_2_nothing_written(name, build, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default results directories (results/, results/local/) are under tmp too
    args = build(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    try:
        rc = main(args)
    except SystemExit as e:  # argparse's own errors (a non-integer --jobs ...) also exit 2
        rc = e.code
    out, err = capsys.readouterr()
    assert rc == 2, f"{name}: exit {rc}; stderr={err!r} stdout={out[-300:]!r}"
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, f"{name}: expected one line, got {lines!r}"
    assert "Traceback" not in err + out
    assert lines[0].startswith("fedx-bench: error: ")
    for w in words:
        assert w.lower() in lines[0].lower(), f"{name}: {w!r} not in {lines[0]!r}"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, f"{name}: wrote {sorted(set(after) - set(before))}"


@pytest.mark.parametrize("build", [_report_corrupt, _collect_corrupt, _compare_corrupt],
                         ids=["report", "collect", "compare"])
def test_corrupt_run_files_are_skipped_with_one_warning_line(build, tmp_path, capsys, monkeypatch):
    """A run dir with wrong-shaped JSON (a list for spec.json and eval.json) is skipped with one warning line naming
    the run and the file; the command still answers (exit 0) and prints no traceback (issue 10's rule)."""
    monkeypatch.chdir(tmp_path)
    rc = main(build(tmp_path))
    out, err = capsys.readouterr()
    assert rc == 0 and "Traceback" not in out + err
    warn = [x for x in err.splitlines() if x.strip()]
    # one line per read of the store (compare reads it as baseline and as new here)
    assert 1 <= len(warn) <= 2 and all(x.startswith("fedx-bench: warning: skipped run 0123456789abcdef") for x in warn)
    assert all(".json" in x for x in warn), warn


def test_the_table_is_large_and_distinct():
    assert len(NAMES) == len(set(NAMES)) and len(NAMES) >= 30

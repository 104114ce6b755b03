"""Smoke tests of the benchmark scripts (benchmarks/): they run end to end and print what they promise.

They run as subprocesses, exactly as a user runs them (``python3 benchmarks/<script>.py``), on a tiny
synthetic configuration, so a refactor of the package that breaks a benchmark fails here rather
than when someone next measures. Timings are not asserted: the CI machines are shared and noisy.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"

TINY = {
    "name": "tiny-bench",
    "base": {
        "dataset": "synthetic",
        "model": {"backbone": "cnn4", "width": 4},
        "federation": {"clients": 2, "rounds": 1, "local_epochs": 1, "min_size": 2},
        "optim": {"batch_size": 16},
        "eval": {"probe_epochs": 2},
    },
    "grid": {"fedx": [True]},
}

NUM = r"[0-9.]+"


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_round_time_runs_both_paths(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump(TINY))
    out_json = tmp_path / "round_time.json"
    r = _run([
        str(BENCH / "round_time.py"), str(suite), "--rounds", "1", "--clients-limit", "1", "--probe-epochs", "2",
        "--device", "cpu", "--threads", "1", "--json", str(out_json),
    ])
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for what in ("local training", "evaluation", "training\\+eval"):
        pattern = rf"{what}\s+ours\s+{NUM} s.*plain\s+{NUM} s.*plain/ours\s+{NUM}x"
        assert re.search(pattern, out), f"no {what!r} line with both paths and a ratio in:\n{out}"
    assert re.search(rf"outside-model share.*ours\s+{NUM}%.*plain\s+{NUM}%", out), out
    assert re.search(rf"linear probe top-1: ours {NUM}\s+plain {NUM}", out), out
    assert "--clients-limit 1" in out  # a limited run must say so
    assert re.search(r"peak memory.*ours \d+ MiB RSS.*plain \d+ MiB RSS", out), out

    res = json.loads(out_json.read_text())
    rd = res["rounds"][0]
    assert rd["ours"]["steps"] == rd["plain"]["steps"] > 0  # same clients, same number of local steps
    fast, plain = res["evaluator_check"][0]
    assert abs(fast - plain) <= 1.0  # the two evaluators on the same model agree (200 test images: 1% = 2)


def test_gpu_step(tmp_path: Path) -> None:
    """Without CUDA: skip message and exit 0. With CUDA: a tiny model runs and reports MFU."""
    if torch.cuda.is_available():
        r = _run([str(BENCH / "gpu_step.py"), "--backbone", "cnn4", "--width", "4", "--batch", "8", "--steps", "2",
                  "--warmup", "1"])
        assert r.returncode == 0, r.stdout + r.stderr
        assert "MFU" in r.stdout and "anchor images/s" in r.stdout
    else:
        r = _run([str(BENCH / "gpu_step.py"), "--steps", "1"])
        assert r.returncode == 0, r.stdout + r.stderr
        assert "no CUDA device: skipped" in r.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU anchor path is for machines without CUDA")
def test_gpu_step_cpu_anchor_counts_flops() -> None:
    r = _run([str(BENCH / "gpu_step.py"), "--cpu", "--backbone", "cnn4", "--width", "4", "--batch", "8",
              "--steps", "1", "--warmup", "0", "--amp", "none"])
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(rf"FLOPs per step .*: ({NUM}) GFLOP", r.stdout)
    assert m and float(m.group(1)) > 0, r.stdout
    assert "anchor images/s" in r.stdout

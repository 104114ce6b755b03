"""The budget suite's claim: every round's randomness derives from (seed, round, client) and the learning rate is
constant, so the first R rounds of a long run equal an R-round run. One long run per arm then gives the whole
budget axis (suites/budget-cpu.yaml relies on this)."""

import json
from pathlib import Path

import pytest

from fedx_bench.config import expand_suite
from fedx_bench.runner import execute_run

BASE = {
    "dataset": "synthetic",
    "model": {"backbone": "cnn4", "width": 4},
    "federation": {"clients": 3, "rounds": 2, "local_epochs": 1, "min_size": 2},
    "optim": {"batch_size": 16},
    "eval": {"probe_epochs": 3, "knn_k": 5, "interval": 1},
}


def _metrics(results: Path, run_id: str) -> list[dict]:
    lines = (results / "runs" / run_id / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def _numbers(row: dict) -> dict:
    """Everything a round records that depends on the computation (not on the clock)."""
    return {k: v for k, v in row.items() if not any(t in k for t in ("time", "seconds", "elapsed", "wall"))}


@pytest.mark.parametrize("fedx", [False, True])
def test_short_run_equals_prefix_of_long_run(tmp_path: Path, fedx: bool) -> None:
    short_cfg = expand_suite({"name": "p", "base": dict(BASE, fedx=fedx, seed=3)}).runs[0]
    long_doc = dict(BASE, fedx=fedx, seed=3, federation=dict(BASE["federation"], rounds=4))
    long_cfg = expand_suite({"name": "p", "base": long_doc}).runs[0]
    assert short_cfg.run_id != long_cfg.run_id
    assert execute_run(short_cfg, tmp_path / "s").state == "done"
    assert execute_run(long_cfg, tmp_path / "l").state == "done"
    short = _metrics(tmp_path / "s", short_cfg.run_id)
    long = _metrics(tmp_path / "l", long_cfg.run_id)
    assert [r["round"] for r in short] == [0, 1, 2] and [r["round"] for r in long] == [0, 1, 2, 3, 4]
    assert [_numbers(r) for r in short] == [_numbers(r) for r in long[:3]]
    # and the long run did go on learning something different afterwards (the test can fail)
    assert _numbers(long[3]) != _numbers(long[2])

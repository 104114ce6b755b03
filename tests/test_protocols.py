"""A new protocol is one class and one registration: a toy per-round and a toy final protocol, registered here,
run inside a real (tiny, synthetic) run and land in metrics.jsonl, eval.json and spec.json with their versions;
unregistered afterwards, their names are unknown again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from fedx_bench.config import expand_suite
from fedx_bench.errors import ConfigError
from fedx_bench.evaluation import (
    FINAL,
    EvalContext,
    Protocol,
    RoundMetricProtocol,
    RunContext,
    protocol_id,
    register_protocol,
    unregister_protocol,
)
from fedx_bench.runner import execute_run


class ToyNorm(RoundMetricProtocol):
    """Mean L2 norm of the test features: per round, sharing the probe's feature pass."""

    name = "toy_norm"
    version = "t1"
    metrics = ("mean",)
    description = "test-only: mean test-feature norm"

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        _, _, te, _ = ctx.features()
        return {"toy_norm_mean": float(te.norm(dim=1).mean())}


class ToyFinal(Protocol):
    """Counts the rounds it saw (state kept in the run context) and reports them once at the end."""

    name = "toy_final"
    version = "t2"
    schedule = FINAL
    description = "test-only: rounds seen"

    def start(self, run: RunContext, resumed: Any) -> None:
        run.state[self.name] = list(resumed or [])

    def after_round(self, run: RunContext, rnd: int, rec: dict[str, Any]) -> None:
        run.state[self.name].append(rnd)

    def checkpoint_state(self, run: RunContext) -> Any:
        return run.state[self.name]

    def finish(self, run: RunContext) -> dict[str, Any] | None:
        return {"protocol": self.id, "rounds_seen": run.state[self.name]}


@pytest.fixture
def toys() -> Iterator[None]:
    register_protocol(ToyNorm())
    register_protocol(ToyFinal())
    try:
        yield
    finally:
        unregister_protocol("toy_norm")
        unregister_protocol("toy_final")


def _doc(protocols: list[str]) -> dict[str, Any]:
    return {"name": "toy", "base": {
        "dataset": "synthetic", "seed": 0, "model": {"backbone": "cnn4", "width": 4},
        "federation": {"clients": 2, "rounds": 2, "local_epochs": 1, "min_size": 2}, "optim": {"batch_size": 16},
        "eval": {"probe_epochs": 2, "knn_k": 5, "protocols": protocols}}}


def test_registered_toy_protocols_are_run_and_recorded(tmp_path, toys):
    cfg = expand_suite(_doc(["linear_probe", "toy_norm", "toy_final"])).runs[0]
    assert protocol_id("toy_norm") == "toy_norm@t1"
    out = execute_run(cfg, tmp_path / "r")
    assert out.state == "done", out.error
    d = tmp_path / "r" / "runs" / cfg.run_id
    recs = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in recs] == [0, 1, 2]
    assert all(r["toy_norm_mean"] > 0 for r in recs)
    ev = json.loads((d / "eval.json").read_text())
    assert ev["metrics"]["toy_norm_mean"]["protocol"] == "toy_norm@t1"
    assert ev["metrics"]["toy_norm_mean"]["last"] == recs[-1]["toy_norm_mean"]
    assert ev["metrics"]["toy_norm_mean"]["init"] == recs[0]["toy_norm_mean"]
    assert ev["toy_final"]["protocol"] == "toy_final@t2" and ev["toy_final"]["rounds_seen"] == [1, 2]
    assert ev["toy_final"]["wall_seconds"] >= 0
    spec = json.loads((d / "spec.json").read_text())
    assert spec["protocols"] == {"linear_probe": "fedx-v1", "toy_norm": "t1", "toy_final": "t2", "partition": "v1"}
    assert ev["protocols"] == spec["protocols"]

    # the toys observe: the probe's numbers are those of the same run without them
    plain = expand_suite(_doc(["linear_probe"])).runs[0]
    assert execute_run(plain, tmp_path / "p").state == "done"
    plain_recs = [json.loads(x) for x in (tmp_path / "p" / "runs" / plain.run_id / "metrics.jsonl")
                  .read_text().splitlines()]
    assert [r["linear_probe_top1"] for r in recs] == [r["linear_probe_top1"] for r in plain_recs]


def test_toy_state_survives_a_resume(tmp_path, toys):
    cfg = expand_suite(_doc(["toy_final"])).runs[0]
    assert execute_run(cfg, tmp_path / "r", stop_after_round=1).state == "stopped"
    assert execute_run(cfg, tmp_path / "r").state == "done"
    ev = json.loads((tmp_path / "r" / "runs" / cfg.run_id / "eval.json").read_text())
    assert ev["toy_final"]["rounds_seen"] == [1, 2]  # round 1 came back from the checkpoint
    assert ev["metrics"] == {}  # a final protocol adds no per-round metric


def test_unregistered_protocol_is_unknown_again(toys):
    unregister_protocol("toy_norm")
    register_protocol(ToyNorm())  # (the fixture removes it again)
    unregister_protocol("toy_norm")
    with pytest.raises(ConfigError, match="toy_norm"):
        expand_suite(_doc(["toy_norm"]))
    register_protocol(ToyNorm())


def test_registration_checks_the_entry():
    class NoVersion(Protocol):
        name = "no_version"

    class BadSchedule(Protocol):
        name, version, schedule = "bad_schedule", "v1", "sometimes"

    for bad in (NoVersion(), BadSchedule()):
        with pytest.raises(ValueError):
            register_protocol(bad)
    with pytest.raises(ConfigError):
        protocol_id("no_version")

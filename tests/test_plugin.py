"""The plug-in example: a method defined outside the package runs ± FedX from a suite and is reported
beside built-in methods' stored results."""

import sys
from pathlib import Path

from fedx_bench import api
from fedx_bench.config import load_suite

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "dataset": "synthetic",
    "dataset.source": "auto",
    "model.backbone": "cnn4",
    "model.width": 4,
    "federation.clients": 2,
    "federation.rounds": 1,
    "federation.local_epochs": 1,
    "federation.min_size": 2,
    "optim.batch_size": 16,
    "eval.probe_epochs": 2,
    "eval.knn_k": 5,
}


def test_plugin_example_runs_with_and_without_fedx_and_is_compared(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    suite = load_suite(ROOT / "examples" / "simsiam-cpu.yaml", overrides=TINY)
    assert {r.method for r in suite.runs} == {"my_simsiam:SimSiam"} and len(suite.runs) == 2
    res = api.run_suite(suite, tmp_path / "res", progress="quiet")
    assert res.counts["done"] == 2
    # a built-in method's stored result in the same results directory
    base = load_suite(ROOT / "suites" / "quickstart.yaml", overrides=TINY)
    base.runs = [r for r in base.runs if not r.fedx.enabled]
    api.run_suite(base, tmp_path / "res", progress="quiet")
    table = api.report(tmp_path / "res")
    assert "SimSiam" in table and "FedSimCLR" in table and "+ FedX" in table
    assert "my_simsiam" in sys.modules

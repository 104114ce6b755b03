"""End to end on the synthetic dataset: suite → store → report; skip when done; resume equals uninterrupted;
bad input is a one-line error with exit code 2."""

import json
import subprocess
import sys

import pytest
import yaml

from fedx_bench import api
from fedx_bench.cli import main
from fedx_bench.config import expand_suite
from fedx_bench.runner import execute_run

TINY = {
    "name": "tiny",
    "base": {
        "dataset": "synthetic",
        "model": {"backbone": "cnn4", "width": 4},
        "federation": {"clients": 2, "rounds": 2, "local_epochs": 1, "min_size": 2},
        "optim": {"batch_size": 16},
        "eval": {"probe_epochs": 3, "knn_k": 5},
    },
    "grid": {"fedx": [False, True], "seed": [0]},
}


def _suite_file(tmp_path, doc=TINY):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_suite_runs_stores_and_reports(tmp_path):
    res = api.run_suite(_suite_file(tmp_path), tmp_path / "res", progress="quiet")
    assert res.counts == {"done": 2, "skipped": 0, "failed": 0}
    for o in res.outcomes:
        d = tmp_path / "res" / "runs" / o.run_id
        for f in ("spec.json", "env.json", "partition.json", "metrics.jsonl", "eval.json", "status.json"):
            assert (d / f).exists(), f
        assert not (d / "checkpoint.pt").exists()
        lines = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        assert [r["round"] for r in lines] == [0, 1, 2]
        assert all(0 <= r["linear_probe_top1"] <= 100 for r in lines)
        ev = json.loads((d / "eval.json").read_text())["metrics"]["linear_probe_top1"]
        assert ev["last"] == lines[-1]["linear_probe_top1"]
        assert ev["best"] == max(r["linear_probe_top1"] for r in lines[1:])
        assert ev["init"] == lines[0]["linear_probe_top1"]
        spec = json.loads((d / "spec.json").read_text())
        assert spec["protocols"]["linear_probe"] == "fedx-v1" and len(spec["partition_sha256"]) == 64
        env = json.loads((d / "env.json").read_text())
        assert {"torch", "torchvision", "git_commit", "device", "host"} <= set(env)
    fedx_losses = [json.loads(x) for x in (tmp_path / "res" / "runs" / res.outcomes[1].run_id / "metrics.jsonl")
                   .read_text().splitlines()][1]["losses"]
    assert {"loss_local_contrastive", "loss_local_relational", "loss_global_contrastive",
            "loss_global_relational"} <= set(fedx_losses)
    # a second invocation skips finished runs
    again = api.run_suite(_suite_file(tmp_path), tmp_path / "res", progress="quiet")
    assert again.counts["skipped"] == 2
    # the report shows both rows and the synthetic column, values read back from the store
    md = api.report(tmp_path / "res")
    assert "FedSimCLR" in md and "+ FedX" in md and "Synthetic Last" in md
    csv = api.report(tmp_path / "res", fmt="csv")
    assert csv.count("synthetic") == 4
    summary = api.summary_table(tmp_path / "res", "tiny")
    assert "Random-init encoder" in summary


def test_resume_equals_uninterrupted(tmp_path):
    doc = dict(TINY, grid={"fedx": [True], "seed": [1]})
    doc["base"] = dict(TINY["base"], federation={"clients": 2, "rounds": 3, "local_epochs": 1, "min_size": 2})
    cfg = expand_suite(doc).runs[0]
    full = execute_run(cfg, tmp_path / "a")
    assert full.state == "done"
    stopped = execute_run(cfg, tmp_path / "b", stop_after_round=1)
    assert stopped.state == "stopped"
    assert (tmp_path / "b" / "runs" / cfg.run_id / "checkpoint.pt").exists()
    resumed = execute_run(cfg, tmp_path / "b")
    assert resumed.state == "done"

    def metrics(root):
        rows = [json.loads(x) for x in (root / "runs" / cfg.run_id / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]

    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")


def test_cli_bad_input_exit_2_one_line(tmp_path, capsys):
    bad = dict(TINY, base=dict(TINY["base"], federation={"clientz": 2}))
    assert main(["run", str(_suite_file(tmp_path, bad)), "--results", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "federation.clientz" in err and "tiny.yaml" in err
    missing = dict(TINY, base=dict(TINY["base"], dataset={"name": "svhn", "root": str(tmp_path / "nodata")}))
    assert main(["run", str(_suite_file(tmp_path, missing)), "--results", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nodata" in err
    impossible = dict(TINY, base=dict(TINY["base"], federation={"clients": 500, "rounds": 1}))
    assert main(["run", str(_suite_file(tmp_path, impossible)), "--results", str(tmp_path / "r"), "--quiet"]) == 2
    assert "clients" in capsys.readouterr().err


def test_list_and_console_script():
    out = subprocess.run([sys.executable, "-m", "fedx_bench.cli", "list", "methods"], capture_output=True, text=True)
    assert out.returncode == 0 and "simclr" in out.stdout
    assert "quickstart" in [n for n, _ in api.list_registry("suites")]
    assert any(n.startswith("linear_probe@fedx-v1") for n, _ in api.list_registry("protocols"))


@pytest.mark.parametrize("fmt", ["md", "latex", "csv"])
def test_report_cli_formats(tmp_path, fmt, capsys):
    api.run_suite(_suite_file(tmp_path, dict(TINY, grid={"fedx": [False], "seed": [0]})), tmp_path / "r",
                  progress="quiet")
    assert main(["report", str(tmp_path / "r"), "--format", fmt, "--reports-dir", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "Synthetic" in out or "synthetic" in out
    assert (tmp_path / "rep" / "r" / "index.md").exists() and "report folder:" in out
    # by suite name, from the suite record in the results directory
    assert main(["report", "tiny", "--results", str(tmp_path / "r"), "--no-files", "--format", fmt]) == 0
    assert "Synthetic" in capsys.readouterr().out or fmt == "csv"
    assert main(["report", "no-such-suite", "--results", str(tmp_path / "r")]) == 2

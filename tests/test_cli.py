"""The command line as a new user meets it: help and version, overrides that win, sweeps, dry runs, the results
layout (stored reference runs beside the user's own), the reproduction line, --rerun, status over both stores,
and every advertised backend running a tiny suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fedx_bench import __version__
from fedx_bench.cli import main
from fedx_bench.config import load_suite
from fedx_bench.status import human_age

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "name": "tiny",
    "description": "two tiny synthetic runs",
    "base": {
        "dataset": {"name": "synthetic", "train_limit": 200},
        "model": {"backbone": "cnn4", "width": 4},
        "federation": {"clients": 2, "rounds": 2, "local_epochs": 1, "min_size": 2},
        "optim": {"batch_size": 16},
        "eval": {"probe_epochs": 2, "knn_k": 5},
    },
    "grid": {"fedx": [False, True], "seed": [0]},
}


def _write(tmp: Path, doc: dict = TINY, name: str = "tiny.yaml") -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(doc))
    return p


def _metrics(root: Path, run_id: str) -> list[dict]:
    rows = [json.loads(x) for x in (root / "runs" / run_id / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in rows]


def test_version_and_bare_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and __version__ in capsys.readouterr().out
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: fedx-bench" in out and "run" in out and "status" in out


def test_every_option_has_help():
    from fedx_bench.cli import build_parser

    p = build_parser()
    sub = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = []
    for name, sp in sub.choices.items():
        for a in sp._actions:
            if a.dest != "help" and not a.help:
                missing.append(f"{name} {'/'.join(a.option_strings) or a.dest}")
    assert not missing, missing


def test_set_wins_over_grid_and_sweep_adds_an_axis(tmp_path, capsys):
    suite = _write(tmp_path)
    assert main(["run", str(suite), "--results", str(tmp_path / "res"), "--dry-run", "--set", "seed=3",
                 "--set", "fedx=true"]) == 0
    out = capsys.readouterr().out
    assert "1 runs" in out and "simclr+fedx/synthetic/s3" in out and "/s0" not in out
    assert main(["run", str(suite), "--results", str(tmp_path / "res"), "--dry-run",
                 "--set", "federation.beta=0.1,5", "--sweep", "seed=0,1"]) == 0
    out = capsys.readouterr().out
    assert "8 runs" in out and "simclr/synthetic/s1 beta=0.1" in out and "simclr+fedx/synthetic/s0 beta=5" in out
    assert out.count(" new") == 8
    assert not (tmp_path / "res").exists()  # a dry run writes nothing
    cfg = load_suite(suite, {"federation.rounds": 7, "eval.protocols": ["knn"]})
    assert {r.federation.rounds for r in cfg.runs} == {7} and cfg.runs[0].eval.protocols == ["knn"]


def test_results_layout_reference_line_and_rerun(tmp_path, capsys, monkeypatch):
    """A stored store (results/) and the user's runs (results/local/, the default): the same configs train again
    and the last line says whether they reproduce the stored runs exactly; a tampered stored value is reported
    with its size; --rerun keeps the old folder."""
    monkeypatch.chdir(tmp_path)
    suite = _write(tmp_path, dict(TINY, grid={"fedx": [False], "seed": [0]}))
    assert main(["run", str(suite), "--results", "results", "--quiet"]) == 0  # the "stored" reference
    capsys.readouterr()
    [rid] = [p.name for p in (tmp_path / "results" / "runs").iterdir()]
    assert main(["run", str(suite), "--dry-run"]) == 0
    assert "new; stored in results/" in capsys.readouterr().out
    assert main(["run", str(suite), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "results" / "local" / "runs" / rid / "eval.json").exists()
    assert "1 done, 0 skipped" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("reference: reproduces the stored reference runs exactly: 1/1 runs"), last
    # a stored value that differs is found and its size printed
    ev_path = tmp_path / "results" / "runs" / rid / "eval.json"
    ev = json.loads(ev_path.read_text())
    ev["metrics"]["linear_probe_top1"]["last"] += 0.25
    ev_path.write_text(json.dumps(ev))
    assert main(["run", str(suite), "--quiet"]) == 0  # finished here: skipped, and said so
    out = capsys.readouterr().out
    assert "1 skipped (already finished in results/local/; --rerun trains them again)" in out
    assert "reference: differs" in out and "largest difference 0.25" in out and "linear_probe_top1.last" in out
    # --rerun trains it again; the old folder is kept under replaced/
    assert main(["run", str(suite), "--quiet", "--rerun"]) == 0
    out = capsys.readouterr().out
    assert "1 done" in out
    assert len(list((tmp_path / "results" / "local" / "replaced").iterdir())) == 1
    assert main(["run", str(suite), "--results", "results", "--rerun", "--quiet"]) == 2  # never into the stored store
    # status reads both stores and labels them
    capsys.readouterr()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("store") and "stored" in out and "local" in out and " ago" in out


def test_human_ages():
    assert human_age(12) == "12 s" and human_age(125) == "2 min" and human_age(3 * 3600 + 300) == "3 h 5 min"
    assert human_age(6 * 86400 + 8 * 3600 + 59) == "6 d 8 h" and human_age(None) == "-"


def test_status_shows_swept_values_and_survives_corrupt_files(tmp_path, capsys):
    doc = dict(TINY, grid={"fedx": [False], "seed": [0], "federation.beta": [0.1, 5.0]})
    assert main(["run", str(_write(tmp_path, doc)), "--results", str(tmp_path / "res"), "--dry-run"]) == 0
    assert "beta=0.1" in capsys.readouterr().out
    rd = tmp_path / "res" / "runs" / "0123456789abcdef"
    rd.mkdir(parents=True)
    (rd / "spec.json").write_text('{"label": 3, "config": [1]}')
    (rd / "status.json").write_bytes(b"\xff\xfe not json")
    assert main(["status", "--results", str(tmp_path / "res")]) == 0
    assert "0123456789abcdef" in capsys.readouterr().out


def test_list_suites_has_descriptions(capsys):
    assert main(["list", "suites"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("quickstart "))
    assert "FedSimCLR" in line


def test_log_lines_are_timestamped(tmp_path, capsys):
    suite = _write(tmp_path, dict(TINY, grid={"fedx": [False], "seed": [0]}))
    assert main(["run", str(suite), "--results", str(tmp_path / "res"), "--log", "--in-process"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err and all(len(x) > 20 and x[4] == "-" and x[13] == ":" for x in err), err[:3]
    rounds = [x for x in err if "] round 2/2" in x]
    assert rounds and "probe=" in rounds[0] and "linear_probe=" not in rounds[0]


# --------------------------------------------------------------------------- backends


def _cli(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), FEDX_BENCH_ZYGOTE="0", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "fedx_bench", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


BACKEND_SUITE = dict(TINY, base={**TINY["base"], "federation": {**TINY["base"]["federation"], "rounds": 1}})


@pytest.fixture(scope="module")
def backend_reference(tmp_path_factory):
    """The tiny suite trained once in this process (one thread, see conftest): what every backend must match."""
    tmp = tmp_path_factory.mktemp("backend-ref")
    suite = _write(tmp, BACKEND_SUITE)
    assert main(["run", str(suite), "--results", str(tmp / "ref"), "--quiet", "--device", "cpu"]) == 0
    return suite, {p.name: _metrics(tmp / "ref", p.name) for p in (tmp / "ref" / "runs").iterdir()}


@pytest.mark.parametrize("backend", ["loky", "dask", "ray"])
def test_every_backend_runs_a_suite(backend, tmp_path, backend_reference):
    """`run --backend loky|dask|ray` trains the same tiny suite to the same numbers (one thread per run). Ray: a
    local instance on loopback limited to this machine's cores, shut down at the end; every run bounded in time."""
    suite, ref = backend_reference
    extra: list[str] = ["--jobs", "2"]
    cluster = None
    if backend == "dask":
        distributed = pytest.importorskip("distributed")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                           host="127.0.0.1")
        extra = ["--backend", "dask", "--scheduler-address", cluster.scheduler_address]
    elif backend == "ray":
        pytest.importorskip("ray")
        extra = ["--backend", "ray", "--jobs", "2"]
    try:
        res = _cli(["run", str(suite), "--log", "--threads-per-run", "1", "--device", "cpu",
                    "--results", str(tmp_path / "res"), *extra], 300)
    finally:
        if cluster is not None:
            cluster.close()
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 done, 0 skipped, 0 failed" in res.stdout
    assert len(ref) == 2
    for rid, rows in ref.items():
        assert _metrics(tmp_path / "res", rid) == rows

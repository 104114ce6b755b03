"""Scheduler: parallel runs in their own processes, device leases, kill -9 + exact resume, failure isolation
(Python errors and hard crashes), retries, Dask backend on a local cluster, ``status``.

Every run is the tiny synthetic config with one CPU thread per run, so results are bitwise comparable with an
in-process reference run (different thread counts may change float reductions)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from fedx_bench import api
from fedx_bench.cli import main
from fedx_bench.errors import UserError
from fedx_bench.scheduler import DeviceLease, SchedulerOptions, parse_devices, plan_local, run_lock
from fedx_bench.status import render_status, status_rows

TINY = {
    "name": "tiny",
    "base": {
        "dataset": {"name": "synthetic", "train_limit": 200},
        "model": {"backbone": "cnn4", "width": 4},
        "federation": {"clients": 2, "rounds": 3, "local_epochs": 1, "min_size": 2},
        "optim": {"batch_size": 16},
        "eval": {"probe_epochs": 3, "knn_k": 5},
    },
    "grid": {"fedx": [False, True], "seed": [0]},
}
ONE_THREAD = ["--threads-per-run", "1"]


def _write(tmp: Path, doc: dict, name: str = "tiny.yaml") -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(doc))
    return p


def _metrics(root: Path, run_id: str, drop_timing: bool = True) -> list[dict]:
    rows = [json.loads(x) for x in (root / "runs" / run_id / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not (drop_timing and k.endswith("_seconds"))} for r in rows]


def _status(root: Path, run_id: str) -> dict:
    try:
        return json.loads((root / "runs" / run_id / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny suite run uninterrupted, in process, with one thread (as every parallel run here uses)."""
    tmp = tmp_path_factory.mktemp("ref")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = api.run_suite(_write(tmp, TINY), tmp / "res", progress="quiet")
    finally:
        torch.set_num_threads(threads)
    assert res.counts["done"] == 2
    return {o.run_id: _metrics(tmp / "res", o.run_id) for o in res.outcomes}


# --------------------------------------------------------------------------- planning and leases (no runs)


def test_devices_plan_and_leases(tmp_path, monkeypatch):
    assert parse_devices("0,1, 3") == ["cuda:0", "cuda:1", "cuda:3"]
    assert parse_devices("cpu") == ["cpu"] and parse_devices(None) is None
    assert parse_devices(["cuda:2"]) == ["cuda:2"]
    for bad in ("0,0", "gpu1", "cpu,0"):
        with pytest.raises(UserError):
            parse_devices(bad)
    with pytest.raises(UserError):
        SchedulerOptions(backend="spark")
    plan = plan_local(SchedulerOptions(), "cpu")  # the default: one run at a time, but in its own process
    assert (plan.devices, plan.concurrency, plan.in_process, plan.threads) == (["cpu"], 1, False, 1)
    assert plan_local(SchedulerOptions(in_process=True)).in_process  # only when asked for
    plan = plan_local(SchedulerOptions(jobs=2, devices=["cpu"]))
    assert (plan.devices, plan.concurrency, plan.in_process) == (["cpu"], 2, False)
    assert plan.threads == 1  # one thread per run whatever --jobs and the cores: numbers never depend on it
    assert plan_local(SchedulerOptions(jobs=2, devices=["cpu"], threads_per_run=3)).threads == 3
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            plan_local(SchedulerOptions(jobs=2, devices=["cuda:0"]))

    # slot pool: two GPUs x 1 slot; a third lease waits (here: aborts) until one is released
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ns = f"test-{os.getpid()}-{tmp_path.name}"
    a, b, c = (DeviceLease(ns, ["cuda:0", "cuda:1"], 1) for _ in range(3))
    assert {a.acquire(), b.acquire()} == {"cuda:0", "cuda:1"}
    assert c.acquire(abort=lambda: True) is None
    a.release()
    assert c.acquire(abort=lambda: True) == "cuda:0"
    b.release()
    c.release()
    # two runs per GPU: the second run goes to the other GPU before doubling up
    d, e, f = (DeviceLease(ns + "k2", ["cuda:0", "cuda:1"], 2) for _ in range(3))
    assert [d.acquire(), e.acquire(), f.acquire()] == ["cuda:0", "cuda:1", "cuda:0"]
    for x in (d, e, f):
        x.release()
    # slots are keyed by the physical GPU: cuda:0 of a process that sees only GPU 3 is GPU 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    g, h = DeviceLease(ns + "p", ["cuda:0"], 1), DeviceLease(ns + "p", ["cuda:0"], 1)
    assert g.acquire() == "cuda:0" and g.slot == "gpu3-0" and h.acquire(abort=lambda: True) is None
    g.release()
    assert DeviceLease(ns, ["cpu"], 1).acquire() == "cpu"

    with run_lock(tmp_path / "run") as held:
        assert held
        with run_lock(tmp_path / "run") as again:
            assert not again


@pytest.mark.parametrize("in_process", [False, True])
def test_locked_run_is_waited_for_not_run_twice(tmp_path, reference, in_process):
    """A run locked by another live process (a second invocation, an orphan on a cluster) is not touched while
    locked: it is waited for, then (not done by the other) run here."""
    import threading

    doc = dict(TINY, grid={"fedx": [False], "seed": [0]})
    run_id = next(iter(reference))
    run = tmp_path / "res" / "runs" / run_id
    touched: list[bool] = []

    def hold() -> None:
        with run_lock(run) as held:
            assert held
            time.sleep(4)
            touched.append((run / "metrics.jsonl").exists())

    th = threading.Thread(target=hold)
    th.start()
    time.sleep(0.5)
    res = api.run_suite(_write(tmp_path, doc), tmp_path / "res", progress="quiet", in_process=in_process)
    th.join()
    assert touched == [False]
    assert res.counts["done"] == 1, [o.error for o in res.outcomes]
    assert _metrics(tmp_path / "res", run_id) == reference[run_id]


# --------------------------------------------------------------------------- kill -9 and exact resume


def test_kill9_mid_round_then_resume_is_exact(tmp_path, reference):
    """``kill -9`` of ``fedx-bench run`` while a run is mid-way, then a re-run: identical to the uninterrupted run.

    Nothing here depends on timing: the test waits (generous deadline) until a run has checkpointed a round, freezes
    that run's process group (SIGSTOP) so it cannot finish and drop its checkpoint before the kill lands, then kills
    the suite process with SIGKILL. The frozen run must still die with its suite (no orphan): SIGKILL reaches a
    stopped process, from its supervisor or from the kernel when its parent dies."""
    suite = _write(tmp_path, TINY)
    res = tmp_path / "res"
    cmd = [sys.executable, "-m", "fedx_bench.cli", "run", str(suite), "--results", str(res), "--jobs", "2",
           "--log", *ONE_THREAD]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                      os.environ.get("PYTHONPATH", "")]))  # this checkout's code
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    killed_at: dict[str, list[dict]] = {}
    frozen: list[int] = []
    try:
        try:
            deadline = time.monotonic() + 600  # a loaded machine may take minutes to start the suite's processes
            while not killed_at and time.monotonic() < deadline:
                assert proc.poll() is None, "suite finished before it could be killed"
                for run_id in reference:
                    st = _status(res, run_id)
                    pid = st.get("pid")
                    if not ((res / "runs" / run_id / "checkpoint.pt").exists() and (st.get("round") or 0) >= 1
                            and st.get("state") == "running" and isinstance(pid, int) and _alive(pid)):
                        continue
                    try:
                        os.killpg(pid, signal.SIGSTOP)  # the run leads its own process group
                    except ProcessLookupError:  # it ended between the look and the signal: look again
                        continue
                    frozen.append(pid)
                    if not (res / "runs" / run_id / "checkpoint.pt").exists():  # froze while replacing it, or done
                        os.killpg(pid, signal.SIGCONT)
                        frozen.remove(pid)
                        continue
                    proc.send_signal(signal.SIGKILL)
                    rnd = _status(res, run_id)["round"]
                    rows = _metrics(res, run_id, drop_timing=False)
                    killed_at[run_id] = [r for r in rows if r["round"] <= rnd]
                    break
                time.sleep(0.1)
            assert killed_at, "no run reached a checkpoint in time"
        finally:
            proc.kill()
            proc.wait()
        # the suite's run processes die with it (no orphan keeps writing into the store), the frozen one included
        pids = [_status(res, r).get("pid") for r in reference]
        deadline = time.monotonic() + 120
        while any(p and _alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(p and _alive(p) for p in pids)
    finally:
        for pid in frozen:  # only if the assertion above failed: never leave a stopped process behind
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
    (run_id, before), = killed_at.items()
    assert (res / "runs" / run_id / "checkpoint.pt").exists()  # it was frozen after a round: its checkpoint stays

    assert main(["run", str(suite), "--results", str(res), "--jobs", "2", "--quiet", *ONE_THREAD]) == 0
    for rid, ref in reference.items():
        assert _metrics(res, rid) == ref  # identical to the uninterrupted run, timing fields aside
        assert not (res / "runs" / rid / "checkpoint.pt").exists()
    after = _metrics(res, run_id, drop_timing=False)
    assert after[: len(before)] == before  # resumed from the checkpoint (even its timings kept), not restarted
    # finished runs are skipped without starting a process
    again = api.run_suite(suite, res, progress="quiet", jobs=2, threads_per_run=1)
    assert again.counts == {"done": 0, "skipped": 2, "failed": 0}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return True


# --------------------------------------------------------------------------- failure isolation and retries

PLUGIN = '''
import os
import signal

from dataclasses import dataclass

from fedx_bench.methods.simclr import SimCLR


@dataclass
class FlakyArgs:
    temperature: float = 0.1
    mode: str = "none"  # none | raise (always) | crash (SIGKILL itself once, in round 2)
    log: str = ""


class Flaky(SimCLR):
    name = "flaky"
    Args = FlakyArgs

    def on_round_start(self, round_idx, client_state):
        super().on_round_start(round_idx, client_state)
        self._round = round_idx
        with open(self.args.log, "a") as f:
            f.write(f"{round_idx}\\n")

    def training_step(self, x1, x2, xr=None):
        if self.args.mode == "raise":
            raise RuntimeError("forced failure for the test")
        if self.args.mode == "crash" and self._round == 2 and not os.path.exists(self.args.log + ".crashed"):
            open(self.args.log + ".crashed", "w").close()
            with open(self.args.log, "a") as f:
                f.write("crash\\n")
            os.kill(os.getpid(), signal.SIGKILL)  # a hard crash: no exception, no traceback, no status
        return super().training_step(x1, x2, xr)
'''


def test_failures_are_isolated_recorded_and_retried(tmp_path, monkeypatch, capsys):
    (tmp_path / "flaky_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    logs = {m: str(tmp_path / f"{m}.log") for m in ("raise", "crash")}
    doc = dict(TINY, grid={"seed": [0]}, cases=[{"method_args": {"mode": m, "log": logs[m]}} for m in logs])
    doc["base"] = dict(TINY["base"], method="flaky_plugin:Flaky")
    res = tmp_path / "res"
    code = main(["run", str(_write(tmp_path, doc)), "--results", str(res), "--jobs", "2", "--retries", "1", "--log",
                 *ONE_THREAD])
    out, err = capsys.readouterr()
    assert code == 1  # one run failed: non-zero exit, after every other run finished
    assert "1 done, 0 skipped, 1 failed" in out and "FAILED" in out
    rows = status_rows(res, "tiny")
    (bad,) = [r for r in rows if r.state == "failed"]
    (good,) = [r for r in rows if r.state == "done"]
    assert (res / "runs" / bad.run_id / "traceback.txt").read_text().count("forced failure for the test") >= 1
    st_bad = _status(res, bad.run_id)
    assert [a["state"] for a in st_bad["attempts"]] == ["failed", "failed"]  # --retries 1: tried twice
    # the hard crash was recorded by the parent (signal named), then retried: resumed in round 2, not restarted
    st_good = _status(res, good.run_id)
    assert [a["state"] for a in st_good["attempts"]] == ["failed", "done"]
    assert "SIGKILL" in st_good["attempts"][0]["error"]
    lines = Path(logs["crash"]).read_text().split()
    assert lines[lines.index("crash") + 1] == "2", lines
    assert [r["round"] for r in _metrics(res, good.run_id)] == [0, 1, 2, 3]
    # progress (plain lines when not on a terminal): runs starting, failing, the suite's count
    assert "start on cpu" in err and "FAILED: RuntimeError" in err and "2/2 runs finished (1 done, 1 failed)" in err
    # status: every run, its state and round; the failure reason
    assert main(["status", str(res), "--suite", "tiny"]) == 0
    table = capsys.readouterr().out
    assert "failed (x2)" in table and "done (x2)" in table and "3/3" in table and "forced failure" in table


# --------------------------------------------------------------------------- status from the store only


def test_status_rows_and_dead_running_runs(tmp_path):
    runs = tmp_path / "runs"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for rid, st in {
        "a" * 16: {"state": "running", "round": 1, "rounds": 4, "pid": dead.pid, "host": socket.gethostname(),
                   "last_metrics": {"linear_probe_top1": 31.5, "knn_top1": 40.0, "loss": 2.5},
                   "elapsed_seconds": 65, "eta_seconds": 195, "device": "cuda:1"},
        "b" * 16: {"state": "running", "round": 2, "rounds": 4, "pid": os.getpid(), "host": socket.gethostname(),
                   "eta_seconds": 30, "device": "cpu"},
    }.items():
        (runs / rid).mkdir(parents=True)
        (runs / rid / "spec.json").write_text(json.dumps({"label": f"simclr/x/{rid[0]}"}))
        (runs / rid / "status.json").write_text(json.dumps(st))
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "s.json").write_text(json.dumps({"run_ids": ["a" * 16, "b" * 16, "c" * 16],
                                                            "labels": {"c" * 16: "simclr/x/c"}}))
    rows = status_rows(tmp_path, "s")
    assert [r.state for r in rows] == ["interrupted", "running", "pending"]  # a's process is gone
    assert rows[0].probe == 31.5 and rows[0].device == "cuda:1" and rows[0].eta_seconds is None
    assert rows[1].eta_seconds == 30 and rows[2].label == "simclr/x/c"
    text = render_status(rows)
    assert "1/4" in text and "31.50" in text and "1:05" in text and "0:30" in text and "3 runs:" in text
    assert [r.run_id for r in status_rows(tmp_path)] == ["a" * 16, "b" * 16]
    with pytest.raises(UserError):
        status_rows(tmp_path, "nope")


# --------------------------------------------------------------------------- cluster backends


def test_dask_local_cluster_same_results(tmp_path, reference, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("FEDX_BENCH_ZYGOTE", "0")  # also covers the fallback: a fresh interpreter per run
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        res = api.run_suite(_write(tmp_path, TINY), tmp_path / "res", progress="quiet", backend="dask",
                            scheduler_address=cl.scheduler_address)
    assert res.counts["done"] == 2, [o.error for o in res.outcomes]
    for run_id, ref in reference.items():
        assert _metrics(tmp_path / "res", run_id) == ref
        assert _status(tmp_path / "res", run_id)["device"] == "cpu"


def test_ray_backend(tmp_path, reference):
    pytest.importorskip("ray")
    res = api.run_suite(_write(tmp_path, TINY), tmp_path / "res", progress="quiet", backend="ray", jobs=2,
                        threads_per_run=1)
    assert res.counts["done"] == 2, [o.error for o in res.outcomes]
    for run_id, ref in reference.items():
        assert _metrics(tmp_path / "res", run_id) == ref

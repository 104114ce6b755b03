"""Reliability and safety (issue 13): nothing in a results directory runs code, no damaged file blocks or silently
drops a run, one crash never stops a suite, disk errors are one line, bad partitions are caught before training,
concurrent invocations share a store quietly, and a run's numbers never depend on ``--jobs``.

Every test uses the tiny synthetic config; each would fail on the code before these fixes (42ba980)."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fedx_bench import api, store
from fedx_bench.cli import main
from fedx_bench.config import expand_suite
from fedx_bench.progress import ParallelProgress, Progress
from fedx_bench.runner import execute_run

ROOT = Path(__file__).resolve().parent.parent
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


def _suite(tmp: Path, doc: dict, name: str = "tiny.yaml") -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(doc))
    return p


def _one(doc: dict = TINY, fedx: bool = True):
    return expand_suite(dict(doc, grid={"fedx": [fedx], "seed": [0]})).runs[0]


def _metrics(root: Path, run_id: str) -> list[dict]:
    rows = [json.loads(x) for x in (root / "runs" / run_id / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in rows]


def _env(*paths: Path) -> dict[str, str]:
    """A subprocess imports this checkout (not the editable install) and the test's plug-ins."""
    extra = [str(p) for p in (ROOT, *paths)]
    return dict(os.environ, PYTHONPATH=os.pathsep.join([*extra, os.environ.get("PYTHONPATH", "")]))


def _cli(args: list[str], cwd: Path, *paths: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedx_bench.cli", *args], cwd=cwd, env=_env(*paths),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The FedX run of the tiny suite, uninterrupted, in process (1 thread, the default)."""
    root = tmp_path_factory.mktemp("ref") / "res"
    cfg = _one()
    assert execute_run(cfg, root).state == "done"
    return cfg, _metrics(root, cfg.run_id)


# --------------------------------------------------------------------------- 1. no code from a results dir


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))



def _untimed(line: str) -> str:
    """A progress line without its leading timestamp (``YYYY-MM-DD HH:MM:SS ``)."""
    return re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", line)

def test_malicious_checkpoint_never_executes(tmp_path, uninterrupted, capsys):
    cfg, want = uninterrupted
    root = tmp_path / "res"
    assert execute_run(cfg, root, stop_after_round=2).state == "stopped"
    marker = tmp_path / "pwned"
    ck = root / "runs" / cfg.run_id / "checkpoint.pt"
    torch.save({"run_id": cfg.run_id, "trainer": _Evil(str(marker)), "records": []}, ck)
    out = execute_run(cfg, root)
    assert not marker.exists(), "loading a checkpoint ran code from the results directory"
    assert out.state == "done"
    err = capsys.readouterr().err
    assert "checkpoint.pt" in err and "refused" in err  # the warning names the file
    assert _metrics(root, cfg.run_id) == want  # resumed from the previous intact checkpoint


# --------------------------------------------------------------------------- 2. damaged checkpoints fall back


@pytest.mark.parametrize("damage", ["truncated", "empty", "random", "both"])
def test_damaged_checkpoint_falls_back_with_identical_metrics(tmp_path, uninterrupted, capsys, damage):
    cfg, want = uninterrupted
    root = tmp_path / "res"
    assert execute_run(cfg, root, stop_after_round=2).state == "stopped"
    run = root / "runs" / cfg.run_id
    latest, prev = run / "checkpoint.pt", run / "checkpoint.prev.pt"
    assert latest.exists() and prev.exists()  # keep-last-2
    data = latest.read_bytes()
    bad = {"truncated": data[: len(data) // 2], "empty": b"", "random": os.urandom(len(data)),
           "both": data[:100]}[damage]
    latest.write_bytes(bad)
    if damage == "both":
        prev.write_bytes(b"\x80\x02garbage")
    out = execute_run(cfg, root)
    assert out.state == "done", out.error
    err = capsys.readouterr().err
    assert str(latest) in err and "falling back" in err
    if damage == "both":
        assert str(prev) in err and "fresh start" in err
    assert _metrics(root, cfg.run_id) == want
    assert not latest.exists() and not prev.exists()  # a done run keeps no checkpoint


# --------------------------------------------------------------------------- 3. a hard crash never stops a suite

CRASHER = '''
import ctypes
import os
import signal
from dataclasses import dataclass

from fedx_bench.methods.simclr import SimCLR


@dataclass
class CrashArgs:
    temperature: float = 0.1
    mode: str = "none"  # none | exit17 | sigkill | segv: crash in the first training step


class Crasher(SimCLR):
    name = "crasher"
    Args = CrashArgs

    def training_step(self, x1, x2, xr=None):
        if self.args.mode == "exit17":
            os._exit(17)
        if self.args.mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.args.mode == "segv":
            ctypes.string_at(0)
        return super().training_step(x1, x2, xr)
'''


def test_jobs1_hard_crashes_are_isolated_and_suite_goes_on(tmp_path):
    (tmp_path / "crasher.py").write_text(textwrap.dedent(CRASHER))
    modes = ["none", "exit17", "sigkill", "segv", "none"]
    cases = [{"method_args": {"mode": m}, "seed": i} for i, m in enumerate(modes)]
    doc = dict(TINY, grid={"fedx": [False]}, cases=cases)
    doc["base"] = dict(TINY["base"], method="crasher:Crasher",
                       federation=dict(TINY["base"]["federation"], rounds=1))
    res = tmp_path / "res"
    p = _cli(["run", str(_suite(tmp_path, doc)), "--results", str(res), "--log"], tmp_path, tmp_path)
    assert p.returncode == 1, p.stderr[-2000:]  # documented: 1 = some run failed, never the crash's own code
    assert "2 done, 0 skipped, 3 failed" in p.stdout
    by_mode = {}
    for d in (res / "runs").iterdir():
        spec = json.loads((d / "spec.json").read_text())
        by_mode[spec["config"]["method_args"]["mode"] + str(spec["seed"])] = json.loads((d / "status.json").read_text())
    assert by_mode["none0"]["state"] == by_mode["none4"]["state"] == "done"  # the run after the crashes ran
    assert "exited with code 17" in by_mode["exit171"]["error"]
    assert "SIGKILL" in by_mode["sigkill2"]["error"]
    assert "SIGSEGV" in by_mode["segv3"]["error"]


# --------------------------------------------------------------------------- 5. done only when the files agree


@pytest.mark.parametrize("name", ["eval.json", "metrics.jsonl", "spec.json", "status.json"])
def test_damaged_done_run_is_detected_reported_and_rerun(tmp_path, uninterrupted, name):
    cfg, want = uninterrupted
    doc = dict(TINY, grid={"fedx": [True], "seed": [0]})
    res = tmp_path / "res"
    assert api.run_suite(_suite(tmp_path, doc), res, progress="quiet").counts["done"] == 1
    run = res / "runs" / cfg.run_id
    assert store.inspect_run(run) == ("done", None)
    f = run / name
    text = f.read_text()
    f.write_text(text[: len(text) // 2] if name != "metrics.jsonl" else "".join(text.splitlines(True)[:-1]))
    state, problem = store.inspect_run(run)
    if name == "status.json":  # unreadable status: not done (re-run), named as damaged
        assert state == "damaged" and "status.json" in problem
    else:
        assert state == "damaged" and name in problem, (state, problem)
        (rec,) = store.load_results(res)
        assert rec["status"]["state"] == "damaged" and name in rec["problem"]  # no table counts it
        assert [(r, s) for r, s, _ in store.left_out_runs(res)] == [(cfg.run_id, "damaged")]
    again = api.run_suite(_suite(tmp_path, doc), res, progress="quiet")
    assert again.counts["done"] == 1 and again.counts["skipped"] == 0  # re-run, not skipped
    assert store.inspect_run(run) == ("done", None)
    assert _metrics(res, cfg.run_id) == want


# --------------------------------------------------------------------------- 4. disk full, read-only store


@contextlib.contextmanager
def _tmpfs(path: Path, size: str = "6m"):
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True)


def _fill(path: Path) -> None:
    with open(path / "filler", "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    with contextlib.suppress(OSError), open(path / "filler2", "wb") as f:
        while True:
            f.write(b"\0" * 512)
            f.flush()


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}


def test_disk_full_and_read_only_store(tmp_path):
    with _tmpfs(tmp_path / "mnt") as mnt:
        res = mnt / "res"
        suite = _suite(tmp_path, TINY)
        p = _cli(["run", str(suite), "--results", str(res), "--quiet"], tmp_path)
        assert p.returncode == 0, p.stderr
        runs = sorted((res / "runs").iterdir())
        # a fully finished suite, status and report --no-files work on a read-only store
        _remount(mnt, "ro")
        try:
            for args in (["run", str(suite), "--results", str(res), "--quiet"], ["status", str(res)],
                         ["report", str(res), "--no-files"]):
                p = _cli(args, tmp_path)
                assert p.returncode == 0 and "Traceback" not in p.stderr, (args, p.stderr[-1500:])
        finally:
            _remount(mnt, "rw")
        # one run left to do; then a read-only and a full disk: one line naming the path and the cause, exit 1
        shutil.rmtree(runs[1])
        done_before = _snapshot(runs[0])
        for cause in ("Read-only file system", "No space left on device"):
            if cause.startswith("Read"):
                _remount(mnt, "ro")
            else:
                _fill(mnt)
            try:
                p = _cli(["run", str(suite), "--results", str(res), "--quiet"], tmp_path)
            finally:
                if cause.startswith("Read"):
                    _remount(mnt, "rw")
            out = p.stdout + p.stderr
            assert p.returncode == 1, out[-2000:]
            assert "Traceback" not in out, out[-2000:]
            lines = [ln for ln in out.splitlines() if cause in ln]
            assert lines and str(res) in lines[0], out[-2000:]
            assert re.search(r"1 skipped( \(.*?\))?, 1 failed", p.stdout), p.stdout[-2000:]
            assert _snapshot(runs[0]) == done_before  # nothing already written is damaged
            assert store.inspect_run(runs[0]) == ("done", None)
        for f in mnt.glob("filler*"):
            f.unlink()
        p = _cli(["run", str(suite), "--results", str(res), "--quiet"], tmp_path)
        assert p.returncode == 0 and "1 done, 1 skipped" in p.stdout, p.stderr[-1500:]


def test_write_errors_name_the_file(tmp_path, monkeypatch):
    """Without root (no tmpfs): a patched writer gives the same one-line error naming the destination file."""
    real = os.replace

    def full(src, dst):
        if str(dst).endswith("status.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(store.os, "replace", full)
    with pytest.raises(OSError) as e:
        store.atomic_write_json(tmp_path / "r" / "status.json", {"a": 1})
    assert str(e.value) == f"[Errno 28] No space left on device: '{tmp_path / 'r' / 'status.json'}'"
    assert not list((tmp_path / "r").iterdir())  # no temp file left


# --------------------------------------------------------------------------- 6. impossible partitions: exit 2 first


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("change", [{"federation": {"clients": 500}},
                                    {"dataset": {"train_limit": 5}, "federation": {"min_size": 10}},
                                    {"dataset": {"fraction": 0.001}, "federation": {"clients": 20}}])
def test_impossible_partition_exit_2_before_any_run(tmp_path, capsys, jobs, change):
    base = json.loads(json.dumps(TINY["base"]))
    for k, v in change.items():
        base[k].update(v)
    doc = dict(TINY, base=base)
    res = tmp_path / "res"
    assert main(["run", str(_suite(tmp_path, doc)), "--results", str(res), "--quiet", "--jobs", jobs]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("fedx-bench: error:"), err
    assert not (res / "runs").exists() or not list((res / "runs").glob("*/status.json"))


# --------------------------------------------------------------------------- 7. concurrent invocations


def test_concurrent_invocations_share_the_work_and_both_exit_0(tmp_path):
    """Two invocations on one store. The first run is held (by this test) until both have said "running
    elsewhere", so they overlap for sure; then they share the work: each run trained once, both exit 0."""
    from fedx_bench.scheduler import run_lock

    suite, res = _suite(tmp_path, TINY), tmp_path / "res"
    first = expand_suite(TINY).runs[0].run_id
    cmd = [sys.executable, "-m", "fedx_bench.cli", "run", str(suite), "--results", str(res), "--log"]
    procs, errs = [], [tmp_path / "a.err", tmp_path / "b.err"]
    with run_lock(res / "runs" / first) as held:
        assert held
        for e in errs:
            procs.append(subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=e.open("w"),
                                          text=True))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not all("running elsewhere" in e.read_text() for e in errs):
            assert all(p.poll() is None for p in procs), [e.read_text()[-800:] for e in errs]
            time.sleep(0.2)
    outs = [p.communicate(timeout=300)[0] for p in procs]
    text = [e.read_text() for e in errs]
    assert [p.returncode for p in procs] == [0, 0], [t[-1500:] for t in text]
    assert all("running elsewhere" in t for t in text)
    assert "FAILED" not in "".join(outs) and "traceback.txt" not in "".join(outs)
    for d in (res / "runs").iterdir():
        st = json.loads((d / "status.json").read_text())
        assert st["state"] == "done" and len(st["attempts"]) == 1  # trained once, by one of them


# --------------------------------------------------------------------------- 8. threads are part of a run


def test_jobs1_and_jobs2_give_identical_metrics(tmp_path):
    """Fresh ``fedx-bench`` processes (default torch threads = the cores, as a user gets); batch 32, where 1 and 2
    intra-op threads give different FedX losses on this config."""
    doc = dict(TINY, base=dict(TINY["base"], optim={"batch_size": 32}))
    suite = _suite(tmp_path, doc)
    for jobs in ("1", "2"):
        p = _cli(["run", str(suite), "--results", str(tmp_path / jobs), "--quiet", "--jobs", jobs], tmp_path)
        assert p.returncode == 0, p.stderr[-1500:]
    ids = sorted(p.name for p in (tmp_path / "1" / "runs").iterdir())
    for rid in ids:
        assert _metrics(tmp_path / "1", rid) == _metrics(tmp_path / "2", rid)
        for jobs in ("1", "2"):
            assert json.loads((tmp_path / jobs / "runs" / rid / "spec.json").read_text())["cpu_threads"] == 1


def test_resume_keeps_the_recorded_thread_count(tmp_path, capsys):
    cfg = _one()
    assert execute_run(cfg, tmp_path / "two", threads=2).state == "done"
    assert execute_run(cfg, tmp_path / "b", threads=2, stop_after_round=1).state == "stopped"
    assert execute_run(cfg, tmp_path / "b").state == "done"  # asks for the default 1: the run keeps its 2
    assert "2 CPU thread(s) this run started with" in capsys.readouterr().err
    assert json.loads((tmp_path / "b" / "runs" / cfg.run_id / "spec.json").read_text())["cpu_threads"] == 2
    assert _metrics(tmp_path / "b", cfg.run_id) == _metrics(tmp_path / "two", cfg.run_id)
    assert cfg.run_id == _one().run_id  # the thread count is not part of the run id


# --------------------------------------------------------------------------- 9. the smaller items


def test_stale_temp_files_are_cleaned_and_files_respect_the_umask(tmp_path):
    cfg = _one()
    old = os.umask(0o022)
    try:
        assert execute_run(cfg, tmp_path, stop_after_round=1).state == "stopped"
        run = tmp_path / "runs" / cfg.run_id
        for name in ("status.json", "metrics.jsonl", "spec.json", "checkpoint.pt"):
            assert (run / name).stat().st_mode & 0o777 == 0o644, name  # not mkstemp's 0600
        stale = run / f".status.json.{uuid.uuid4().hex[:8]}.tmp"  # what a SIGKILL mid-write leaves
        stale.write_text("{")
        assert execute_run(cfg, tmp_path).state == "done"
        assert not stale.exists() and not list(run.glob(".*.tmp"))
    finally:
        os.umask(old)


BROKEN = '''
from fedx_bench.methods.simclr import SimCLR


class Broken(SimCLR):
    def __init__(self, *a, **k):
        raise RuntimeError("broken before training")
'''


def test_failure_before_start_has_no_bogus_elapsed_time(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin.py").write_text(textwrap.dedent(BROKEN))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = expand_suite(dict(TINY, base=dict(TINY["base"], method="broken_plugin:Broken"),
                            grid={"seed": [0]})).runs[0]
    buf = io.StringIO()
    out = execute_run(cfg, tmp_path / "res", progress=Progress("log", stream=buf))
    assert out.state == "failed"
    (line,) = [_untimed(ln) for ln in buf.getvalue().splitlines() if "FAILED" in ln]
    assert line.startswith(f"[{cfg.label}] FAILED before training started") and " in " not in line, line


def test_first_progress_line_after_resume_is_not_the_previous_round(tmp_path):
    cfg = _one()
    run = tmp_path / "runs" / cfg.run_id
    run.mkdir(parents=True)
    st = {"state": "running", "round": 2, "start_round": 2, "attempt": 1, "device": "cpu", "invocation": "me",
          "elapsed_seconds": 5.0, "eta_seconds": 2.0, "last_metrics": {"linear_probe_top1": 12.5, "loss": 1.0}}
    (run / "status.json").write_text(json.dumps(st))
    buf = io.StringIO()
    view = ParallelProgress(Progress("log", stream=buf), tmp_path, "tiny", [cfg])
    view.invocation = "me"
    view.poll([cfg.run_id])
    lines = [_untimed(x) for x in buf.getvalue().splitlines()]
    assert lines == [f"[{cfg.label}] start on cpu (resuming after round 2)"]
    (run / "status.json").write_text(json.dumps(dict(st, round=3, elapsed_seconds=7.0)))
    view.poll([cfg.run_id])
    assert _untimed(buf.getvalue().splitlines()[-1]).startswith(f"[{cfg.label}] round 3/3 ")


def _idx(arr: np.ndarray) -> bytes:
    head = b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + np.ascontiguousarray(arr, np.uint8).tobytes()


def test_fmnist_bad_labels_error_names_the_labels_file(tmp_path, monkeypatch):
    from fedx_bench.data import fmnist, load_dataset
    from fedx_bench.errors import CorruptDataError

    monkeypatch.setenv("FEDX_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fmnist, "SYSTEM_DIRS", [str(tmp_path / "none")])
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("t10k", 7)):
        (raw / f"{split}-images-idx3-ubyte").write_bytes(_idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)))
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(_idx(np.full(n, 12, np.uint8)))  # 12: outside 0..9
    with pytest.raises(CorruptDataError) as e:
        load_dataset("fmnist", root=str(tmp_path / "data"), verify_checksums=False)
    assert "train-labels-idx1-ubyte" in str(e.value) and "images" not in str(e.value).split(":")[0]

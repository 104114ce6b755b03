"""The supervisor: the joblib task that owns one run. It leases a device, starts the run process (see ``zygote``),
waits for it, stops it if the suite process disappears, records how it ended (a crash it saw as an exit status
becomes ``failed`` + the reason in ``status.json`` / ``traceback.txt``) and retries failures, each attempt resuming
from the last checkpoint. It never imports torch, so it never crashes with the run."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..procutil import locked_elsewhere, pid_alive
from ..store import RunDir, read_json
from .leases import DeviceLease, worker_gpus
from .planning import DEFAULT_THREADS
from .run_process import EXIT_ALREADY_DONE, EXIT_LOCKED, EXIT_OK, EXIT_RUN_FAILED, _write_error
from .zygote import _start

WORKER_LOG = "worker.log"
POLL_SECONDS = 0.5
LOCK_WAIT_SECONDS = 1.0  # how often a supervisor looks whether a run locked elsewhere is free


@dataclass
class RunTask:
    """Everything a supervisor needs, as plain data (pickles to any backend's worker)."""

    index: int
    run_id: str
    label: str
    config: dict[str, Any]
    results_dir: str
    suite: str
    data_root: str | None
    devices: list[str] | None  # None: auto on the worker host
    runs_per_device: int
    lease_namespace: str
    threads: int | None
    threads_by_worker: dict[str, int] = field(default_factory=dict)  # dask worker address → threads
    retries: int = 0
    backend: str = "loky"
    parent_pid: int = 0
    parent_host: str = ""
    pythonpath: list[str] = field(default_factory=list)
    cwd: str | None = None
    env: dict[str, str] | None = None  # loky: the suite's own environment (reused workers may predate it)
    zygote: bool = True  # fork runs from a preloaded zygote (False: a fresh interpreter per run)


def _exit_reason(rc: int) -> str:
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        why = " (out of memory, or killed externally)" if -rc == signal.SIGKILL else ""
        return f"run process killed by {name}{why}"
    return f"run process exited with code {rc}"


def _log_tail(path: Path, n: int = 60) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(lines[-n:])


def _update_status(run_path: Path, state: str | None, **fields: Any) -> None:
    """``RunDir.set_status`` on a run folder; ``state=None`` keeps the recorded state (merge, stamp, atomic)."""
    rd = RunDir(run_path.parent.parent, run_path.name)
    rd.set_status(state or rd.status.get("state", "pending"), **fields)


def _record_crash(run_path: Path, reason: str) -> None:
    """The parent's half of failure isolation: a run process that died without recording anything."""
    tail = _log_tail(run_path / WORKER_LOG)
    text = f"{reason}\n\nlast lines of {WORKER_LOG}:\n{tail}\n" if tail else f"{reason}\n"
    with contextlib.suppress(OSError):  # a full or read-only results dir: the outcome still carries the reason
        run_path.mkdir(parents=True, exist_ok=True)
        (run_path / "traceback.txt").write_text(text)
    with contextlib.suppress(OSError):
        _update_status(run_path, "failed", error=reason, progress=None)


def _task_threads(task: RunTask) -> int:
    """Intra-op threads of the run: the suite's ``threads_per_run``, else 1, on every backend and host."""
    return task.threads or DEFAULT_THREADS


def _error_path(task: RunTask, attempt: int) -> Path:
    """Where a run process leaves its one-line error when the results dir cannot take it (temp dir, per host)."""
    return Path(tempfile.gettempdir()) / "fedx-bench-leases" / task.lease_namespace / f"{task.run_id}.{attempt}.err"


def supervise(task: RunTask) -> dict[str, Any]:
    """Lease a device, run the run in its own process, record how it ended; retry failures (resuming)."""
    local = task.parent_host == socket.gethostname()

    def suite_gone() -> bool:
        return local and task.parent_pid > 0 and not pid_alive(task.parent_pid)

    run_path = Path(task.results_dir) / "runs" / task.run_id
    t0 = time.perf_counter()
    state, error, device = "failed", None, None
    attempt = 0
    while attempt < task.retries + 1:
        if locked_elsewhere(run_path):  # another live invocation works on it: wait for it (the parent says so)
            while locked_elsewhere(run_path):
                if suite_gone():
                    return _outcome_dict(task, "interrupted", "suite process gone", t0, device)
                time.sleep(LOCK_WAIT_SECONDS)
        if _run_is_done(run_path):  # finished meanwhile by another invocation (the parent saw it unfinished)
            return _outcome_dict(task, "skipped", None, t0, device, note="finished by another invocation")
        attempt += 1
        devices = task.devices if task.devices is not None else (worker_gpus() or ["cpu"])
        lease = DeviceLease(task.lease_namespace, devices, task.runs_per_device, task.index)
        device = lease.acquire(abort=suite_gone)
        if device is None:
            return _outcome_dict(task, "interrupted", "suite process gone", t0, device)
        err_path = _error_path(task, attempt)
        try:
            rc, interrupted = _run_process(task, device, attempt, run_path, suite_gone, err_path)
        except OSError as e:  # worker.log cannot be opened: the results dir is full or read-only
            rc, interrupted = EXIT_RUN_FAILED, False
            _write_error(str(err_path), f"{type(e).__name__}: {' '.join(str(e).split())}")
        finally:
            lease.release()
        st = read_json(run_path / "status.json", {}) or {}
        child_error = _read_text(err_path)
        if rc == EXIT_OK:
            state, error = "done", None
        elif rc == EXIT_ALREADY_DONE:
            return _outcome_dict(task, "skipped", None, t0, device, note="finished by another invocation")
        elif rc == EXIT_LOCKED:  # taken by another invocation between our look and the run's start: wait again
            attempt -= 1
            time.sleep(LOCK_WAIT_SECONDS)
            continue
        elif rc == EXIT_RUN_FAILED:
            state, error = "failed", child_error or st.get("error") or "failed"
        else:
            reason = _exit_reason(rc)
            if interrupted or st.get("state") == "interrupted":
                state, error = "interrupted", reason
            else:
                state, error = "failed", reason
                _record_crash(run_path, reason)
        attempts = (read_json(run_path / "status.json", {}) or {}).get("attempts", [])
        rec = {"attempt": attempt, "state": state, "error": error, "device": device, "host": socket.gethostname(),
               "exit_code": rc}
        with contextlib.suppress(OSError):  # a full or read-only results dir: the outcome still says why
            _update_status(run_path, None, attempts=[*attempts, rec])
        if state != "failed" or interrupted:
            break
        if suite_gone():
            break
    if suite_gone() and task.backend == "loky":
        os._exit(1)  # a loky worker whose suite was killed has nobody to report to
    return _outcome_dict(task, state, error, t0, device)


def _run_process(task: RunTask, device: str, attempt: int, run_path: Path,
                 suite_gone: Callable[[], bool], err_path: Path | None = None) -> tuple[int, bool]:
    """Start the run process and wait for it, stopping it if the suite process disappears."""
    threads = _task_threads(task)
    env = dict(task.env if task.env is not None else os.environ)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
    job = {"config": task.config, "run_id": task.run_id, "results_dir": task.results_dir, "suite": task.suite,
           "data_root": task.data_root, "device": device, "threads": threads, "attempt": attempt,
           "error_path": str(err_path) if err_path is not None else None, "invocation": task.lease_namespace}
    log_path = run_path / WORKER_LOG
    try:
        run_path.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"--- attempt {attempt} on {socket.gethostname()} {device} at {time.ctime()}\n")
    except OSError as e:  # a write error of a buffered file names no file: name it (one line for the user)
        raise OSError(e.errno, e.strerror or str(e), str(e.filename or log_path)) from None
    proc = _start(task, job, log_path, env)
    interrupted = False
    try:
        while (rc := proc.wait(POLL_SECONDS)) is None:
            if suite_gone():
                interrupted = True
                proc.terminate()
    except BaseException:  # KeyboardInterrupt in the worker: stop the run cleanly, then propagate
        proc.terminate()
        raise
    return rc, interrupted


def _outcome_dict(task: RunTask, state: str, error: str | None, t0: float, device: str | None,
                  note: str | None = None) -> dict[str, Any]:
    ev = read_json(Path(task.results_dir) / "runs" / task.run_id / "eval.json", {}) \
        if state in ("done", "skipped") else {}
    return {"run_id": task.run_id, "label": task.label, "state": state, "summary": (ev or {}).get("metrics", {}),
            "wall_seconds": time.perf_counter() - t0, "error": error, "device": device, "note": note}


def _read_text(path: Path) -> str | None:
    try:
        return " ".join(path.read_text().split()) or None
    except OSError:
        return None


def _run_is_done(run_path: Path) -> bool:
    from ..store import inspect_run

    return inspect_run(run_path)[0] == "done"

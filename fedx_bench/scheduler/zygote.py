"""Starting run processes, and the entry point ``python -m fedx_bench.scheduler`` they run.

A fresh interpreter per run pays the import of torch (~2 s of CPU, far more on a loaded machine) every time. So each
supervisor keeps a *zygote*: a ``python -m fedx_bench.scheduler --zygote`` process that imports these modules once
and then ``os.fork()``s one child per run. Importing them starts no thread and does not initialise CUDA, so the fork
is safe, and each run still gets a fresh OS process of its own (crash isolation, clean GPU state). One zygote per
suite invocation, so code edited between two invocations is never stale. ``FEDX_BENCH_ZYGOTE=0`` (in the suite's
environment) starts a fresh ``python -m fedx_bench.scheduler`` per run instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .run_process import _die_with_parent, child_main

if TYPE_CHECKING:
    from .supervision import RunTask

ZYGOTE_PRELOAD = ["torch", "torchvision", "fedx_bench.runner", "fedx_bench.data", "fedx_bench.models",
                  "fedx_bench.methods", "fedx_bench.evaluation"]


def _setup_child(log_path: str, env: dict[str, str], cwd: str | None, pythonpath: list[str]) -> None:
    """In a forked run process: output to worker.log, the suite's environment, working dir and import path."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.environ.clear()
    os.environ.update(env)  # before anything reads it (CUDA_VISIBLE_DEVICES, FEDX_BENCH_DATA ...)
    if cwd:
        os.chdir(cwd)
    sys.path[:0] = [p for p in pythonpath if p not in sys.path]
    import faulthandler

    faulthandler.enable()  # a segfault leaves its Python stack in worker.log


def _exit(code: int) -> None:
    """Leave without interpreter teardown (torch's takes a while); every result file is already written."""
    for f in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            f.flush()
    os._exit(code)


def _send(fd: int, msg: dict[str, Any]) -> None:
    os.write(fd, (json.dumps(msg) + "\n").encode())


def zygote_main(supervisor_pid: int) -> None:
    """The zygote: preload, then for each job line on stdin fork a run process and report its pid and exit code."""
    _die_with_parent(supervisor_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the runs (they record "interrupted"), not for us
    for mod in ZYGOTE_PRELOAD:
        with contextlib.suppress(Exception):
            __import__(mod)
    out = sys.stdout.fileno()
    sys.stdout.flush()
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            _exit(0)  # the supervisor closed the pipe
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                os.setsid()  # its own session and process group, like a job of a batch scheduler
                signal.signal(signal.SIGINT, signal.default_int_handler)
                _setup_child(req["log"], req["env"], req["cwd"], req["pythonpath"])
                code = child_main(req["job"])
            except BaseException:  # noqa: BLE001 - anything here is reported through the exit code and worker.log
                traceback.print_exc()
            _exit(code)
        _send(out, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        _send(out, {"exit": -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)})


_zygotes = threading.local()  # one zygote per supervising thread (a Dask worker may run several supervisors)


PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding this fedx_bench package


def _child_env() -> dict[str, str]:
    """This environment with the folder of *this* fedx_bench first on PYTHONPATH, so a run process imports the
    same code as its supervisor whatever the working directory (another checkout may be installed)."""
    paths = [PACKAGE_ROOT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)))


class _Zygote:
    """The supervisor's handle on its zygote (restarted for a new suite invocation or if it died)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.proc = subprocess.Popen([sys.executable, "-m", "fedx_bench.scheduler", "--zygote", str(os.getpid())],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_child_env())
        self._buf = b""

    @classmethod
    def get(cls, namespace: str) -> _Zygote:
        z: _Zygote | None = getattr(_zygotes, "current", None)
        if z is None or z.namespace != namespace or z.proc.poll() is not None:
            if z is not None:
                z.close()
            z = _zygotes.current = cls(namespace)
        return z

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.proc.poll() is None:
            self.proc.kill()
        if getattr(_zygotes, "current", None) is self:
            _zygotes.current = None

    def submit(self, req: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()

    def read(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message, None on timeout; raises EOFError if the zygote is gone."""
        import select

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("zygote exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)


class _Proc:
    """One run process, started through the zygote or as a fresh interpreter; exit codes as ``Popen.returncode``."""

    def __init__(self, popen: subprocess.Popen | None = None, zygote: _Zygote | None = None, pid: int = 0) -> None:
        self.popen, self.zygote, self.pid = popen, zygote, pid
        self.returncode: int | None = None

    def wait(self, timeout: float) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
            self.returncode = self.popen.returncode
            return self.returncode
        assert self.zygote is not None
        try:
            msg = self.zygote.read(timeout)
        except EOFError:  # the zygote died, and its child with it (PR_SET_PDEATHSIG)
            self.zygote.close()
            msg = {"exit": -signal.SIGKILL}
        if msg is not None:
            self.returncode = int(msg["exit"])
        return self.returncode

    def signal(self, sig: int) -> None:
        """Signal the run's process group (the run and anything it started); it leads its own session."""
        pid = self.popen.pid if self.popen is not None else self.pid
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def terminate(self, grace: float = 10.0) -> None:
        if self.wait(0) is None:
            self.signal(signal.SIGTERM)
            if self.wait(grace) is None:
                self.signal(signal.SIGKILL)
                self.wait(60)


def _start(task: RunTask, job: dict[str, Any], log_path: Path, env: dict[str, str]) -> _Proc:
    if task.zygote:
        try:
            z = _Zygote.get(task.lease_namespace)
            z.submit({"job": job, "log": str(log_path), "env": env, "cwd": task.cwd, "pythonpath": task.pythonpath})
            msg = z.read(300)
            if msg is None or "pid" not in msg:
                raise OSError(f"zygote did not start the run: {msg}")
            return _Proc(zygote=z, pid=int(msg["pid"]))
        except (OSError, EOFError, ValueError) as e:  # fall back to a fresh interpreter for this run
            z = getattr(_zygotes, "current", None)
            if z is not None:
                z.close()
            with open(log_path, "a") as log:
                log.write(f"zygote unavailable ({type(e).__name__}: {e}); starting a fresh interpreter\n")
    if task.pythonpath:
        env = dict(env, PYTHONPATH=os.pathsep.join([*task.pythonpath, *filter(None, [env.get("PYTHONPATH")])]))
    with open(log_path, "ab") as log:
        popen = subprocess.Popen([sys.executable, "-m", "fedx_bench.scheduler"], stdin=subprocess.PIPE, stdout=log,
                                 stderr=subprocess.STDOUT, env=env, cwd=task.cwd, start_new_session=True)
    assert popen.stdin is not None
    popen.stdin.write(json.dumps(dict(job, supervisor_pid=os.getpid())).encode())
    popen.stdin.close()
    return _Proc(popen=popen)


def main(argv: list[str] | None = None, stdin: IO[str] | None = None) -> int:
    """``python -m fedx_bench.scheduler``: a run process (job as JSON on stdin), or ``--zygote SUPERVISOR_PID``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--zygote"]:
        zygote_main(int(argv[1]))
    job = json.loads((stdin or sys.stdin).read())
    return child_main(job)

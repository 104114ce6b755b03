"""Fan a suite's runs across devices and machines: one process per run, device leases, failure isolation.

Why this shape
--------------
* **One OS process per run.** Every run is executed in a fresh *run process*, started by a small
  *supervisor* task. The supervisor is what joblib schedules (loky locally, Dask or Ray on a cluster); it
  never imports torch and never crashes with the run. A segfault, an OOM kill or ``kill -9`` of a run
  process is seen by its supervisor as an exit status, recorded in the run's ``status.json`` (``failed`` +
  the reason) and ``traceback.txt``, and the other runs go on. (Running the run inside a loky worker
  directly would not isolate failures: loky marks its pool broken and kills every worker when one dies.)
  Run processes are forked from a per-supervisor *zygote* that has imported torch once (start-up ~0.1 s
  instead of seconds of imports per run; ``FEDX_BENCH_ZYGOTE=0``: a fresh ``python -m
  fedx_bench.scheduler`` per run). Each run process leads its own session/process group, like a batch
  job: it is signalled as a group, and on kernels with autogroup scheduling each run gets its own fair share
  of the CPU instead of all runs sharing the suite's. This holds in every mode, ``--jobs 1`` included: a run that
  calls ``os._exit``, segfaults or is OOM-killed is recorded FAILED with its cause and the suite goes on. Only an
  explicit ``in_process=True`` (``--in-process``, or ``api.run_one``) runs a run inside the calling process.
* **Device leases.** A run's ``cfg.device`` is set to the leased device (``cuda:<i>`` or ``cpu``). GPU
  leases are a slot pool of ``runs_per_device`` lock files per GPU in the worker host's temp dir, taken
  with ``fcntl.flock``: the first free slot wins, and the kernel releases it when the holder dies, so a
  crashed run can never leak its GPU. The pool works the same under loky, Dask and Ray (no shared queue is
  needed between machines); slots are keyed by the *physical* GPU (``CUDA_VISIBLE_DEVICES`` aware) so Ray
  actors or Dask workers pinned to different GPUs never block each other. CPU runs take no lease; their
  concurrency is the number of jobs. Every run uses ``threads_per_run`` intra-op threads (default 1, whatever
  ``--jobs`` and the machine's cores): the count changes float reductions, so it is part of what a run is
  (recorded in ``spec.json``, reused on resume).
  Without ``fcntl`` (Windows) devices are assigned statically round-robin by task index.
* **Exact resume.** The runner checkpoints atomically after every round; a run process re-started on the
  same run resumes from that checkpoint. Each run process holds an exclusive lock on ``runs/<id>/.lock``
  while it works, so two invocations (or an orphan on a cluster) never write the same run at once; a run
  locked by another live invocation is shown "running elsewhere" and waited for (then skipped if it ended
  done, or run here if it did not).
* **No orphans.** The run process asks the kernel to kill it when its supervisor dies
  (``PR_SET_PDEATHSIG``), and a supervisor on the suite's own host stops its run when the suite process is
  gone (``kill -9`` of ``fedx-bench run``). On a remote Dask/Ray worker the supervisor cannot see the
  client: a killed client leaves in-flight runs to finish; re-running skips them once done, and the run
  lock makes a concurrent duplicate wait instead of corrupting the run.
* **Retries.** ``retries`` re-runs a failed run up to N more times inside its supervisor (holding no
  lease in between), each attempt resuming from the last checkpoint. ``status.json["attempts"]`` keeps
  every attempt's outcome.

Backends (all through joblib)
-----------------------------
* ``loky`` (default): local processes; ``jobs`` supervisors at once (capped by the number of GPU slots).
* ``dask``: ``joblib.parallel_config(backend="dask", client=distributed.Client(address))``. If any worker
  advertises a ``GPU`` resource (``dask worker ADDR --resources GPU=<gpus*runs_per_device>``) every run is
  submitted with ``resources={"GPU": 1}`` so Dask never starts more runs on a worker than it has GPU slots;
  the lock pool then picks a free GPU on that host. CPU threads per run default to the host's cores
  threads per run as everywhere (default 1).
* ``ray``: ``ray.util.joblib.register_ray()`` then ``parallel_config(backend="ray")``. On a cluster with GPUs
  the pool's actors are created with ``ray_remote_args={"num_gpus": 1 / runs_per_device}``; Ray sets
  ``CUDA_VISIBLE_DEVICES`` per actor, the run process inherits it and uses ``cuda:0`` of what it sees.
  (This needs a Ray whose joblib backend accepts ``ray_remote_args``, Ray >= 2.9; untested here, Ray is not
  installed in CI.) CPU runs use one thread unless ``threads_per_run`` says otherwise.

For Dask and Ray, the results directory must be on a filesystem every worker sees (the same path), and
fedx-bench (and any plug-in method module) must be importable on the workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import UserError

if TYPE_CHECKING:
    from .config import RunConfig
    from .progress import Progress
    from .runner import RunOutcome

try:  # POSIX only; without it leases fall back to static round-robin
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

BACKENDS = ("loky", "dask", "ray")
WORKER_LOG = "worker.log"
LOCK_FILE = ".lock"
# Exit codes of the run process (anything else is a crash the supervisor records itself).
EXIT_OK = 0
EXIT_RUN_FAILED = 3  # the failure is already recorded in status.json / traceback.txt
EXIT_LOCKED = 4  # another live process holds the run's lock
EXIT_ALREADY_DONE = 5  # the run was done when the run process got its lock (finished by another invocation)
POLL_SECONDS = 0.5
LOCK_WAIT_SECONDS = 1.0  # how often a supervisor looks whether a run locked elsewhere is free
DEFAULT_THREADS = 1  # intra-op CPU threads per run (same as fedx_bench.runner.DEFAULT_THREADS)


# --------------------------------------------------------------------------- options and planning


@dataclass
class SchedulerOptions:
    """How a suite is fanned out. ``jobs=None``: one run per device slot (or 1 on CPU without --devices)."""

    jobs: int | None = None
    devices: list[str] | None = None  # parsed: ["cuda:0", ...] or ["cpu"]; None = auto
    runs_per_device: int = 1
    backend: str = "loky"
    scheduler_address: str | None = None  # dask
    ray_address: str | None = None  # ray
    retries: int = 0
    threads_per_run: int | None = None  # CPU threads per run; None = 1 (DEFAULT_THREADS) in every mode
    poll_seconds: float = 1.0  # how often the parent reads the runs' status.json for progress
    in_process: bool = False  # run inside this process, one after another (explicit only: no crash isolation)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.jobs is not None and self.jobs < 1:
            raise UserError(f"--jobs must be >= 1, got {self.jobs}")
        if self.runs_per_device < 1:
            raise UserError(f"--runs-per-device must be >= 1, got {self.runs_per_device}")
        if self.retries < 0:
            raise UserError(f"--retries must be >= 0, got {self.retries}")
        if self.threads_per_run is not None and self.threads_per_run < 1:
            raise UserError(f"--threads-per-run must be >= 1, got {self.threads_per_run}")


def parse_devices(spec: str | Sequence[str] | None) -> list[str] | None:
    """``"0,1"`` → ``["cuda:0", "cuda:1"]``; ``"cpu"`` → ``["cpu"]``; ``cuda:N`` entries kept; None stays None."""
    if spec is None:
        return None
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if str(s).strip()]
    if not items:
        raise UserError("--devices is empty")
    out: list[str] = []
    for it in items:
        it = str(it)
        if it == "cpu":
            out.append("cpu")
        elif it.isdigit():
            out.append(f"cuda:{int(it)}")
        elif it == "cuda":
            out.append("cuda:0")
        elif it.startswith("cuda:") and it[5:].isdigit():
            out.append(it)
        else:
            raise UserError(f"--devices: {it!r} is not a GPU index, cuda:N or cpu")
    if "cpu" in out and len(set(out)) > 1:
        raise UserError("--devices: mix of cpu and GPUs; pass either GPU indices or cpu")
    if len(set(out)) != len(out):
        raise UserError("--devices lists a device twice; use --runs-per-device for several runs per GPU")
    return out


def local_devices(devices: list[str] | None, device: str | None = None) -> list[str]:
    """Devices a local (loky) suite uses: the given list, else ``--device``, else every GPU, else cpu."""
    import torch

    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if devices is not None:
        devs = devices
    elif device not in (None, "auto"):
        devs = parse_devices(device) or ["cpu"]
    else:
        devs = [f"cuda:{i}" for i in range(n_gpu)] or ["cpu"]
    missing = [d for d in devs if d != "cpu" and int(d.split(":")[1]) >= n_gpu]
    if missing:
        raise UserError(f"device {','.join(missing)} requested but this machine has {n_gpu} CUDA device(s) "
                        "(use --devices cpu)")
    return devs


@dataclass
class LocalPlan:
    """What the loky backend will do: ``in_process`` only when asked for explicitly."""

    devices: list[str]
    concurrency: int
    threads: int
    in_process: bool


def plan_local(opts: SchedulerOptions, device: str | None = None) -> LocalPlan:
    """Concurrency is ``--jobs`` (default: every device slot when ``--devices`` is given, else 1), capped by the
    GPU slots (devices x runs-per-device); CPU threads per run are ``threads_per_run`` (default 1), never derived
    from the concurrency, so the same run gives the same numbers under any ``--jobs``."""
    threads = opts.threads_per_run or DEFAULT_THREADS
    if opts.in_process:  # explicit: sequential, in this process, on the suite's own device
        return LocalPlan([device or "auto"] if opts.devices is None else opts.devices[:1], 1, threads, True)
    devs = local_devices(opts.devices, device)
    if devs == ["cpu"]:
        n = opts.jobs or 1
    else:
        slots = len(devs) * opts.runs_per_device
        n = min(opts.jobs, slots) if opts.jobs else (slots if opts.devices is not None else 1)
    return LocalPlan(devs, n, threads, False)


# --------------------------------------------------------------------------- device leases


def _physical_gpu(device: str) -> str:
    """The physical id of ``cuda:<i>`` given ``CUDA_VISIBLE_DEVICES`` (what two processes must agree on)."""
    idx = int(device.split(":")[1]) if ":" in device else 0
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[idx] if idx < len(visible) else str(idx)


def worker_gpus() -> list[str]:
    """GPUs this worker process can use (auto device selection on a remote worker)."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        vis = [v for v in cvd.split(",") if v.strip() and v.strip() != "-1"]
        return [f"cuda:{i}" for i in range(len(vis))]
    try:
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    except Exception:  # noqa: BLE001 - no usable torch/CUDA: CPU
        return []


class DeviceLease:
    """A slot pool of ``per_device`` flock'ed files per GPU, shared by every process of one suite invocation
    on one host. ``acquire`` returns the device to use; the kernel frees a dead holder's slot."""

    def __init__(self, namespace: str, devices: list[str], per_device: int, index: int = 0) -> None:
        self.devices = devices
        self.per_device = per_device
        self.index = index  # task index: static round-robin without fcntl
        self.dir = Path(tempfile.gettempdir()) / "fedx-bench-leases" / namespace
        self._fd: int | None = None
        self.slot: str | None = None

    def acquire(self, abort: Callable[[], bool] = lambda: False, wait: float = 0.2) -> str | None:
        """Block until a slot is free (None if ``abort()`` turns true while waiting)."""
        if self.devices == ["cpu"]:
            return "cpu"
        if fcntl is None:  # pragma: no cover
            return self.devices[self.index % len(self.devices)]
        self.dir.mkdir(parents=True, exist_ok=True)
        while True:
            for k in range(self.per_device):  # slot-major: spread runs over GPUs before doubling up
                for dev in self.devices:
                    path = self.dir / f"gpu{_physical_gpu(dev)}-{k}.lock"
                    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        os.close(fd)
                        continue
                    self._fd, self.slot = fd, path.stem
                    return dev
            if abort():
                return None
            time.sleep(wait)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd, self.slot = None, None


@contextlib.contextmanager
def run_lock(run_path: Path) -> Iterator[bool]:
    """Exclusive lock on ``runs/<id>/.lock`` for the life of the holder process; yields False if taken."""
    if fcntl is None:  # pragma: no cover
        yield True
        return
    run_path.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_path / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def mark_owner(rd: Any, attempt: int, device: str | None = None, invocation: str | None = None) -> None:
    """Record which process works on a run (``status`` uses pid+host to tell a live run from a killed one); the
    per-attempt fields start empty, so nobody mistakes the previous attempt's for this one's."""
    fields: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "attempt": attempt, "error": None,
                              "warnings": [], "start_round": None, "progress": None, "invocation": invocation}
    if device is not None:
        fields["device"] = device
    rd.set_status("running", **fields)


# --------------------------------------------------------------------------- the run process


def _die_with_parent(parent_pid: int | None) -> None:
    """Linux: SIGKILL this process when its parent (supervisor or forkserver) dies: no run outlives its scheduler."""
    expected = os.getppid() if parent_pid is None else parent_pid
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != expected:  # the parent died before prctl took effect
        os._exit(1)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def child_main(job: dict[str, Any]) -> int:
    """Body of the run process: lock the run, set its device and threads, execute (resume) it."""
    _die_with_parent(job.get("supervisor_pid"))
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a supervisor's stop → status "interrupted", not "running"
    import torch

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    from .config import run_config_from_dict
    from .progress import Progress
    from .runner import DatasetCache, execute_run
    from .store import RunStore, one_line_error

    cfg = run_config_from_dict(job["config"])
    cfg.device = job["device"]
    rd = RunStore(job["results_dir"]).run(job.get("run_id") or cfg.run_id)
    err_path = job.get("error_path")

    def failed(msg: str, tb: str | None = None) -> int:
        """Record a failure where it can be (the results dir may be full or read-only: then the error file in the
        temp dir still carries the one-line cause to the supervisor)."""
        _write_error(err_path, msg)
        with contextlib.suppress(OSError):
            rd.path.mkdir(parents=True, exist_ok=True)
            rd.file("traceback.txt").write_text(tb or msg + "\n")
        with contextlib.suppress(OSError):
            rd.set_status("failed", error=msg, progress=None)
        return EXIT_RUN_FAILED

    if cfg.run_id != rd.run_id:  # this code hashes the config differently: never write another run's folder
        return failed(f"run id mismatch: the suite computed {rd.run_id} but this worker's fedx-bench computes "
                      f"{cfg.run_id} for the same config (fedx-bench changed while the suite ran, or differs "
                      "between machines)")
    try:
        with run_lock(rd.path) as held:
            if not held:
                return EXIT_LOCKED
            if rd.is_done():
                return EXIT_ALREADY_DONE
            mark_owner(rd, int(job.get("attempt", 1)), cfg.device, job.get("invocation"))
            try:
                out = execute_run(cfg, job["results_dir"], DatasetCache(job.get("data_root")), Progress("quiet"),
                                  suite=job.get("suite"), threads=job.get("threads"))
            except KeyboardInterrupt:
                return 128 + signal.SIGTERM
            except Exception as e:  # noqa: BLE001 - UserError (e.g. a device this worker lacks): a failed run
                return failed(one_line_error(e), traceback.format_exc())
    except OSError as e:  # the lock file or the first status write: the results dir cannot be written
        return failed(one_line_error(e), traceback.format_exc())
    if out.state not in ("done", "skipped"):
        _write_error(err_path, out.error or "failed")
        return EXIT_RUN_FAILED
    return EXIT_OK


def _write_error(path: str | None, msg: str) -> None:
    if path:
        with contextlib.suppress(OSError):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(msg)


# --------------------------------------------------------------------------- the supervisor (a joblib task)


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


def _pid_alive(pid: int) -> bool:
    """The suite process exists and is not a zombie (a killed ``fedx-bench run`` its shell has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


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
    """``RunDir.set_status`` without importing torch (supervisors stay light): merge, stamp, write atomically."""
    rec = _read_json(run_path / "status.json", {}) or {}
    rec.update(fields)
    rec["state"] = state or rec.get("state", "pending")
    rec["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run_path.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=run_path, prefix=".status.json.", suffix=".tmp")
    with contextlib.suppress(OSError):
        os.fchmod(fd, _file_mode())  # as open() would: 0666 minus the umask, not mkstemp's 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(rec, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, run_path / "status.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _file_mode() -> int:
    from .store import file_mode  # store imports torch lazily: safe in a supervisor

    return file_mode()


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


def _locked_elsewhere(run_path: Path) -> bool:
    """True while another live process holds the run's lock (a look only: the lock is released at once)."""
    if fcntl is None or not (run_path / LOCK_FILE).exists():  # pragma: no cover - no fcntl
        return False
    try:
        fd = os.open(run_path / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _error_path(task: RunTask, attempt: int) -> Path:
    """Where a run process leaves its one-line error when the results dir cannot take it (temp dir, per host)."""
    return Path(tempfile.gettempdir()) / "fedx-bench-leases" / task.lease_namespace / f"{task.run_id}.{attempt}.err"


def supervise(task: RunTask) -> dict[str, Any]:
    """Lease a device, run the run in its own process, record how it ended; retry failures (resuming)."""
    local = task.parent_host == socket.gethostname()

    def suite_gone() -> bool:
        return local and task.parent_pid > 0 and not _pid_alive(task.parent_pid)

    run_path = Path(task.results_dir) / "runs" / task.run_id
    t0 = time.perf_counter()
    state, error, device = "failed", None, None
    attempt = 0
    while attempt < task.retries + 1:
        if _locked_elsewhere(run_path):  # another live invocation works on it: wait for it (the parent says so)
            while _locked_elsewhere(run_path):
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
        st = _read_json(run_path / "status.json", {}) or {}
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
        attempts = (_read_json(run_path / "status.json", {}) or {}).get("attempts", [])
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


# --------------------------------------------------------------------------- starting run processes
#
# A fresh interpreter per run pays the import of torch (~2 s of CPU, far more on a loaded machine) every time. So each
# supervisor keeps a *zygote*: a ``python -m fedx_bench.scheduler --zygote`` process that imports these modules once
# and then ``os.fork()``s one child per run. Importing them starts no thread and does not initialise CUDA, so the fork
# is safe, and each run still gets a fresh OS process of its own (crash isolation, clean GPU state). One zygote per
# suite invocation, so code edited between two invocations is never stale. ``FEDX_BENCH_ZYGOTE=0`` (in the suite's
# environment) starts a fresh ``python -m fedx_bench.scheduler`` per run instead.
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


PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder holding this fedx_bench package


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
    ev = _read_json(Path(task.results_dir) / "runs" / task.run_id / "eval.json", {}) \
        if state in ("done", "skipped") else {}
    return {"run_id": task.run_id, "label": task.label, "state": state, "summary": (ev or {}).get("metrics", {}),
            "wall_seconds": time.perf_counter() - t0, "error": error, "device": device, "note": note}


def _read_text(path: Path) -> str | None:
    try:
        return " ".join(path.read_text().split()) or None
    except OSError:
        return None


def _run_is_done(run_path: Path) -> bool:
    from .store import inspect_run

    return inspect_run(run_path)[0] == "done"


# --------------------------------------------------------------------------- progress of parallel runs


def _fmt_secs(s: float | None) -> str:
    from .progress import _fmt_secs as f

    return "?" if s is None else f(s)


def _short(metric: str) -> str:
    return metric.replace("_top1", "").replace("linear_", "")


class ParallelProgress:
    """Suite bar + one live line per active run, from the runs' ``status.json`` (written atomically by the
    runner every round and every ~30 s within one). In log mode: one plain line per change."""

    def __init__(self, prog: Progress, results_dir: Path, suite: str, runs: list[RunConfig]) -> None:
        self.prog = prog
        self.results_dir = results_dir
        self.suite = suite
        self.total = len(runs)
        self.labels = {r.run_id: r.label for r in runs}
        self.rounds = {r.run_id: r.federation.rounds for r in runs}
        self.finished: dict[str, str] = {}
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._warned: dict[str, int] = {}  # run id -> warnings of its current attempt already printed
        self._elsewhere: set[str] = set()  # runs announced as running in another invocation
        self.invocation: str | None = None  # our run processes stamp status.json["invocation"] with this
        self._bars: dict[str, Any] = {}
        self._free_pos: list[int] = []
        self._next_pos = 1
        self._t0 = time.perf_counter()

    def start(self) -> None:
        self.prog.suite_start(self.suite, self.total)

    def _status(self, run_id: str) -> dict[str, Any]:
        return _read_json(self.results_dir / "runs" / run_id / "status.json", {}) or {}

    def elsewhere(self, run_id: str) -> None:
        """A run another live invocation holds: say so once; it is waited for, not failed."""
        if run_id in self._elsewhere or run_id in self.finished:
            return
        self._elsewhere.add(run_id)
        st = self._status(run_id)
        who = f" (pid {st.get('pid')} on {st.get('host')})" if st.get("pid") else ""
        self.prog.log(f"[{self.labels.get(run_id, run_id)}] running elsewhere{who}; waiting for it")

    def _held_elsewhere(self, st: dict[str, Any], run_id: str) -> bool:
        """Another invocation's live run process works on it (its pid alive, the lock held)."""
        if st.get("state") != "running" or not st.get("pid"):
            return False
        if st.get("host") == socket.gethostname() and not _pid_alive(int(st["pid"])):
            return False
        return _locked_elsewhere(self.results_dir / "runs" / run_id)

    def _warnings(self, run_id: str, st: dict[str, Any]) -> None:
        """A run's new warnings: printed even with --quiet (they are not progress)."""
        ws = st.get("warnings") or []
        key = f"{run_id}:{st.get('attempt')}"
        for w in ws[self._warned.get(key, 0):]:
            line = f"[{self.labels.get(run_id, run_id)}] warning: {w}"
            if self.prog.mode == "quiet":
                print(f"fedx-bench: {line}", file=sys.stderr, flush=True)
            else:
                self.prog.log(line)
        self._warned[key] = len(ws)

    def poll(self, active: Sequence[str]) -> None:
        for run_id in active:
            if run_id in self.finished:
                continue
            st = self._status(run_id)
            if self.invocation is not None and st.get("invocation") != self.invocation:
                if run_id not in self._elsewhere and self._held_elsewhere(st, run_id):
                    self.elsewhere(run_id)
                continue  # not claimed by our run process: what is there is another invocation's, not ours to show
            self._warnings(run_id, st)
            if st.get("state") != "running" or st.get("start_round") is None:
                continue  # start_round is set once the run has loaded its checkpoint: then we know where it is
            pr = st.get("progress") or {}
            key = (st.get("attempt"), st.get("round"), json.dumps(pr, sort_keys=True, default=str))
            if self._seen.get(run_id) == key:
                continue
            first = run_id not in self._seen or self._seen[run_id][0] != key[0]  # a (re)start
            self._seen[run_id] = key
            self._show(run_id, st, first)

    def _show(self, run_id: str, st: dict[str, Any], first: bool) -> None:
        label, rounds = self.labels[run_id], self.rounds[run_id]
        rnd = int(st.get("round") or 0)
        start = int(st.get("start_round") or 0)
        lm = st.get("last_metrics") or {}
        pr = st.get("progress") or {}
        if self.prog.mode == "bar":
            self._bar_update(run_id, label, rounds, rnd, lm if rnd > start else {}, pr, st.get("eta_seconds"))
            return
        if first:
            resumed = f" (resuming after round {start})" if start else ""
            att = f", attempt {st['attempt']}" if (st.get("attempt") or 1) > 1 else ""
            self.prog.log(f"[{label}] start on {st.get('device', '?')}{resumed}{att}")
        if pr.get("step") is not None:
            self.prog.log(f"[{label}] round {pr.get('round')}/{rounds} client {pr.get('client')}/{pr.get('clients')} "
                          f"step {pr.get('step')}/{pr.get('steps')} loss={pr.get('loss', float('nan')):.4g}")
        elif pr:  # another phase of the run (e.g. a long evaluation)
            self.prog.log(f"[{label}] " + " ".join(f"{k}={v}" for k, v in sorted(pr.items())))
        elif rnd > start and st.get("elapsed_seconds") is not None:
            # only rounds this attempt trained: never the previous attempt's last line again after a resume
            parts = " ".join(f"{_short(k)}={v:.4g}" for k, v in lm.items() if isinstance(v, (int, float)))
            self.prog.log(f"[{label}] round {rnd}/{rounds} {parts} elapsed={_fmt_secs(st.get('elapsed_seconds'))} "
                          f"eta={_fmt_secs(st.get('eta_seconds'))}")

    def _bar_update(self, run_id: str, label: str, rounds: int, rnd: int, lm: dict[str, Any],
                    pr: dict[str, Any], eta: float | None) -> None:
        from tqdm import tqdm

        bar = self._bars.get(run_id)
        if bar is None:
            pos = self._free_pos.pop(0) if self._free_pos else self._next_pos
            self._next_pos = max(self._next_pos, pos + 1)
            bar = tqdm(total=rounds, initial=rnd, desc=label, unit="round", position=pos, leave=False,
                       file=self.prog.stream)
            bar.fedx_pos = pos  # type: ignore[attr-defined]
            self._bars[run_id] = bar
        bar.n = rnd
        post = {_short(k): f"{v:.3g}" for k, v in lm.items() if isinstance(v, (int, float))}
        if eta is not None:
            post["eta"] = _fmt_secs(eta)
        if pr.get("step") is not None:
            post["step"] = f"{pr.get('client')}/{pr.get('clients')}:{pr.get('step')}/{pr.get('steps')}"
        elif pr:
            post.update({k: str(v) for k, v in pr.items()})
        bar.set_postfix(post, refresh=False)
        bar.refresh()

    def finish(self, outcome: RunOutcome, device: str | None = None) -> None:
        self.finished[outcome.run_id] = outcome.state
        bar = self._bars.pop(outcome.run_id, None)
        if bar is not None:
            self._free_pos.append(bar.fedx_pos)
            self._free_pos.sort()
            bar.close()
        label = self.labels.get(outcome.run_id, outcome.run_id)
        if outcome.state != "skipped" and self.prog.mode != "bar" and outcome.run_id not in self._seen:
            # a short run can start and end between two polls of its status: still say that it started
            self._seen[outcome.run_id] = (None, None, "")
            self.prog.log(f"[{label}] start on {device or '?'}")
        st = self._status(outcome.run_id)
        if outcome.state not in ("skipped", "interrupted") and st.get("invocation") == self.invocation:
            self._warnings(outcome.run_id, st)  # warnings of its last moments (e.g. a checkpoint fallback)
        note = getattr(outcome, "note", None)
        if note:
            self.prog.log(f"[{label}] {note}")
        elif outcome.state != "skipped":
            what = "done" if outcome.state == "done" else f"{outcome.state.upper()}: {outcome.error}"
            on = f" on {device}" if device else ""
            self.prog.log(f"[{label}] {what} in {_fmt_secs(outcome.wall_seconds)}{on}")
        self.prog.suite_advance()
        if self.prog.mode != "bar":
            c: dict[str, int] = {}
            for s in self.finished.values():
                c[s] = c.get(s, 0) + 1
            counts = ", ".join(f"{v} {k}" for k, v in sorted(c.items()))
            self.prog.log(f"suite {self.suite}: {len(self.finished)}/{self.total} runs finished ({counts}) "
                          f"elapsed={_fmt_secs(time.perf_counter() - self._t0)}")

    def end(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        self.prog.suite_end()


# --------------------------------------------------------------------------- backends


@dataclass
class _Backend:
    parallel_kwargs: dict[str, Any]
    n_jobs: int
    devices: list[str] | None
    threads: int | None
    threads_by_worker: dict[str, int] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None


def _dask_backend(opts: SchedulerOptions) -> _Backend:
    try:
        import distributed
    except ImportError:
        raise UserError("--backend dask needs the dask extra: pip install 'fedx-bench[dask]'") from None
    if opts.scheduler_address:
        client = distributed.Client(opts.scheduler_address, set_as_default=False)
        close = client.close
    else:
        try:
            client = distributed.get_client()
        except ValueError:
            raise UserError("--backend dask needs --scheduler-address HOST:PORT (or a running dask Client)") from None
        close = lambda: None  # noqa: E731 - not ours to close
    try:
        info = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # older distributed
        info = client.scheduler_info()["workers"]
    cpus = client.run(os.cpu_count) if info else {}
    per_host: dict[str, int] = {}
    for w in info.values():
        per_host[w.get("host", "")] = per_host.get(w.get("host", ""), 0) + int(w.get("nthreads", 1))
    threads_by_worker = {a: max(1, int(cpus.get(a) or 1) // max(1, per_host[w.get("host", "")]))
                         for a, w in info.items()}
    kwargs: dict[str, Any] = {"backend": "dask", "client": client}
    if any("GPU" in (w.get("resources") or {}) for w in info.values()):
        kwargs["resources"] = {"GPU": 1}
    n_jobs = opts.jobs or -1
    return _Backend(kwargs, n_jobs, opts.devices, opts.threads_per_run, threads_by_worker, close)


def _ray_backend(opts: SchedulerOptions) -> _Backend:
    """Ray: the given cluster (``--address``), else a local one started here on loopback, limited to this
    machine's cores, without dashboard, and shut down when the suite ends. Ray's joblib backend is a
    multiprocessing pool that joblib >= 1.4 refuses for ``return_as="generator*"``; its pool delivers results
    through callbacks, so a subclass that says so streams outcomes as runs finish."""
    try:
        import ray
        from joblib import register_parallel_backend
        from ray.util.joblib.ray_backend import RayBackend
    except ImportError:
        raise UserError("--backend ray needs the ray extra: pip install 'fedx-bench[ray]'") from None

    class _StreamingRayBackend(RayBackend):
        supports_return_generator = True

    started = False
    if not ray.is_initialized():
        try:
            if opts.ray_address:
                ray.init(address=opts.ray_address, log_to_driver=False)
            else:
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, _node_ip_address="127.0.0.1",
                         log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            where = opts.ray_address or "a local Ray instance"
            raise UserError(f"--backend ray: cannot start or reach {where}: {' '.join(str(e).split())[:200]}") from None
        started = True
    register_parallel_backend("ray", _StreamingRayBackend)
    kwargs: dict[str, Any] = {"backend": "ray"}
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if gpus > 0:
        kwargs["ray_remote_args"] = {"num_gpus": 1.0 / opts.runs_per_device}
    n_jobs = opts.jobs or max(1, int(gpus * opts.runs_per_device) or int(ray.cluster_resources().get("CPU", 1)))
    return _Backend(kwargs, n_jobs, opts.devices, opts.threads_per_run, close=ray.shutdown if started else lambda: None)


def _backend(opts: SchedulerOptions, device: str | None) -> _Backend:
    if opts.backend in ("dask", "ray"):
        be = _dask_backend(opts) if opts.backend == "dask" else _ray_backend(opts)
        if be.devices is None and device not in (None, "auto"):  # --device cpu|cuda:N applies on every worker
            be.devices = parse_devices(device)
        return be
    plan = plan_local(opts, device)
    return _Backend({"backend": "loky"}, plan.concurrency, plan.devices, plan.threads)


def _consume(tasks: list[RunTask], be: _Backend, out: queue.Queue) -> None:
    """Runs in a thread (joblib's backend config is thread-local): feeds finished outcomes to ``out``."""
    try:
        import joblib
        from joblib import Parallel, delayed, parallel_config

        # joblib < 1.4 has no unordered generator: outcomes then arrive in submission order (same results)
        unordered = tuple(int(x) for x in joblib.__version__.split(".")[:2]) >= (1, 4)
        with parallel_config(**be.parallel_kwargs):
            try:
                par = Parallel(n_jobs=be.n_jobs, return_as="generator_unordered" if unordered else "generator",
                               batch_size=1)
            except ValueError:  # a backend without generators (Ray's): outcomes at the end; progress still polls
                par = Parallel(n_jobs=be.n_jobs, batch_size=1)
            for res in par(delayed(supervise)(t) for t in tasks):
                out.put(res)
    except BaseException as e:  # noqa: BLE001 - handed to the main thread
        out.put(e)


def run_parallel(runs: list[RunConfig], results_dir: str | Path, suite: str, data_root: str | None,
                 prog: Progress, opts: SchedulerOptions, device: str | None = None) -> list[RunOutcome]:
    """Run (resume, skip) every run, each in its own process on a leased device; outcomes in suite order."""
    from .runner import RunOutcome
    from .store import RunStore, read_json

    root = Path(results_dir).resolve()
    store = RunStore(root)
    view = ParallelProgress(prog, root, suite, runs)
    outcomes: dict[str, RunOutcome] = {}
    view.start()
    todo: list[RunConfig] = []
    for r in runs:
        rd = store.run(r.run_id)
        if rd.is_done():  # no process for finished runs
            o = RunOutcome(r.run_id, r.label, "skipped", read_json(rd.file("eval.json"), {}).get("metrics", {}))
            outcomes[r.run_id] = o
            view.finish(o)
        else:
            todo.append(r)
    be = _backend(opts, device) if todo else None
    try:
        if be is not None:
            namespace = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            view.invocation = namespace
            for r in todo:  # held by another live invocation: shown as such and waited for by its supervisor
                if _locked_elsewhere(root / "runs" / r.run_id):
                    view.elsewhere(r.run_id)
            local = opts.backend == "loky"
            pythonpath = [PACKAGE_ROOT, *(os.path.abspath(p or ".") for p in sys.path)] if local else []
            tasks = [RunTask(i, r.run_id, r.label, r.to_dict(), str(root), suite, data_root, be.devices,
                             opts.runs_per_device, namespace, be.threads, be.threads_by_worker, opts.retries,
                             opts.backend, os.getpid(), socket.gethostname(), pythonpath,
                             os.getcwd() if local else None, dict(os.environ) if local else None,
                             os.environ.get("FEDX_BENCH_ZYGOTE", "1") != "0")
                     for i, r in enumerate(todo)]
            if opts.backend == "loky" and prog.mode != "quiet":
                devs = ",".join(be.devices or [])
                capped = f" (--jobs {opts.jobs} capped by the device slots)" if (opts.jobs or 0) > be.n_jobs else ""
                prog.log(f"suite {suite}: {be.n_jobs} concurrent runs on {devs}{capped} "
                         f"({opts.runs_per_device}/device, {be.threads} CPU threads/run)")
            q: queue.Queue = queue.Queue()
            th = threading.Thread(target=_consume, args=(tasks, be, q), daemon=True, name="fedx-scheduler")
            th.start()
            pending = {t.run_id for t in tasks}
            while pending:
                try:
                    item = q.get(timeout=opts.poll_seconds)
                except queue.Empty:
                    item = None
                if isinstance(item, BaseException):
                    raise item
                if item is not None:
                    dev = item.pop("device", None)
                    o = RunOutcome(**item)
                    outcomes[o.run_id] = o
                    pending.discard(o.run_id)
                    view.finish(o, dev)
                view.poll(sorted(pending))
            th.join()
            if fcntl is not None and opts.backend == "loky":
                import shutil

                shutil.rmtree(Path(tempfile.gettempdir()) / "fedx-bench-leases" / namespace, ignore_errors=True)
    finally:
        view.end()
        if be is not None:
            be.close()
    return [outcomes[r.run_id] for r in runs]


def main(argv: list[str] | None = None, stdin: IO[str] | None = None) -> int:
    """``python -m fedx_bench.scheduler``: a run process (job as JSON on stdin), or ``--zygote SUPERVISOR_PID``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--zygote"]:
        zygote_main(int(argv[1]))
    job = json.loads((stdin or sys.stdin).read())
    return child_main(job)


if __name__ == "__main__":
    _exit(main())

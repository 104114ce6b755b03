"""The run process: what runs inside the fresh OS process of one run (forked by the zygote or a new interpreter).
It locks the run, takes its device and threads, executes (resumes) it and reports how it ended by its exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from ..procutil import run_lock
from .leases import mark_owner

# Exit codes of the run process (anything else is a crash the supervisor records itself).
EXIT_OK = 0
EXIT_RUN_FAILED = 3  # the failure is already recorded in status.json / traceback.txt
EXIT_LOCKED = 4  # another live process holds the run's lock
EXIT_ALREADY_DONE = 5  # the run was done when the run process got its lock (finished by another invocation)


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
    from ..config import run_config_from_dict
    from ..progress import Progress
    from ..runner import DatasetCache, execute_run
    from ..store import RunStore, one_line_error

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

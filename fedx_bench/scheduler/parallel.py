"""``run_parallel``: a suite's runs fanned out, each run in its own process on a leased device, with live progress
read from the runs' ``status.json``; outcomes come back in suite order."""

from __future__ import annotations

import os
import queue
import socket
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ..procutil import fcntl, locked_elsewhere
from ..progress import ParallelProgress
from ..store import RunStore, read_json
from .backends import _backend, _consume
from .planning import SchedulerOptions
from .supervision import RunTask
from .zygote import PACKAGE_ROOT

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..progress import Progress
    from ..runner import RunOutcome


def run_parallel(runs: list[RunConfig], results_dir: str | Path, suite: str, data_root: str | None,
                 prog: Progress, opts: SchedulerOptions, device: str | None = None) -> list[RunOutcome]:
    """Run (resume, skip) every run, each in its own process on a leased device; outcomes in suite order."""
    from ..runner import RunOutcome  # imports torch: kept out of the import of the scheduler package

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
                if locked_elsewhere(root / "runs" / r.run_id):
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

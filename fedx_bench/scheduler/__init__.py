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

Modules
-------
* ``planning``: ``SchedulerOptions``, ``parse_devices``, ``local_devices``, ``plan_local`` (what will run where).
* ``leases``: ``DeviceLease`` (the GPU slot pool), ``worker_gpus``, ``mark_owner``; the run lock and pid liveness
  live in ``fedx_bench.procutil`` (``status`` shares them).
* ``run_process``: ``child_main``, the body of a run's own process, and its exit codes.
* ``zygote``: starting run processes (the fork-server zygote or a fresh interpreter) and ``main``, the entry of
  ``python -m fedx_bench.scheduler``.
* ``supervision``: ``RunTask`` and ``supervise``, the joblib task that owns one run (exit reasons, retries, the
  status records of crashes).
* ``backends``: loky, Dask and Ray behind joblib.
* ``parallel``: ``run_parallel``. The live view of the runs is ``fedx_bench.progress.ParallelProgress``.
"""

from __future__ import annotations

from ..procutil import LOCK_FILE, pid_alive, run_lock
from .leases import DeviceLease, mark_owner, worker_gpus
from .parallel import run_parallel
from .planning import BACKENDS, DEFAULT_THREADS, LocalPlan, SchedulerOptions, local_devices, parse_devices, plan_local
from .run_process import EXIT_ALREADY_DONE, EXIT_LOCKED, EXIT_OK, EXIT_RUN_FAILED, child_main
from .supervision import LOCK_WAIT_SECONDS, POLL_SECONDS, WORKER_LOG, RunTask, supervise
from .zygote import PACKAGE_ROOT, ZYGOTE_PRELOAD, main, zygote_main

__all__ = [
    "BACKENDS",
    "DEFAULT_THREADS",
    "EXIT_ALREADY_DONE",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_RUN_FAILED",
    "LOCK_FILE",
    "LOCK_WAIT_SECONDS",
    "PACKAGE_ROOT",
    "POLL_SECONDS",
    "WORKER_LOG",
    "ZYGOTE_PRELOAD",
    "DeviceLease",
    "LocalPlan",
    "RunTask",
    "SchedulerOptions",
    "child_main",
    "local_devices",
    "main",
    "mark_owner",
    "parse_devices",
    "pid_alive",
    "plan_local",
    "run_lock",
    "run_parallel",
    "supervise",
    "worker_gpus",
    "zygote_main",
]

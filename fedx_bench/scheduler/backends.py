"""Where supervisors run: joblib's loky (local processes), Dask (``--scheduler-address``) or Ray (``--address``),
each as a ``_Backend`` (joblib's parallel config, how many at once, the devices and CPU threads per run), and the
thread that feeds the supervisors to joblib and hands their outcomes back as runs finish."""

from __future__ import annotations

import os
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from .planning import SchedulerOptions, parse_devices, plan_local
from .supervision import RunTask, supervise


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

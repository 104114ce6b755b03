"""The Python API a notebook calls; the CLI is a thin layer over these functions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunConfig, SuiteConfig, load_suite
from .errors import UserError
from .progress import Progress
from .registry import BACKBONES, DATASETS, EVALUATIONS, METHODS, load_builtins
from .runner import DatasetCache, RunOutcome, execute_run
from .store import RunStore

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"


@dataclass
class SuiteResult:
    name: str
    outcomes: list[RunOutcome] = field(default_factory=list)
    wall_seconds: float = 0.0
    results_dir: str = "results"

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {"done": 0, "skipped": 0, "failed": 0}
        for o in self.outcomes:
            out[o.state] = out.get(o.state, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0


def run_suite(
    suite: str | Path | SuiteConfig,
    results_dir: str | Path = "results",
    data_root: str | None = None,
    device: str | None = None,
    progress: str | Progress = "auto",
    overrides: dict[str, Any] | None = None,
    *,
    jobs: int | None = None,
    devices: str | Sequence[str] | None = None,
    runs_per_device: int = 1,
    backend: str = "loky",
    scheduler_address: str | None = None,
    ray_address: str | None = None,
    retries: int = 0,
    threads_per_run: int | None = None,
    in_process: bool = False,
) -> SuiteResult:
    """Run every run of a suite (skipping finished ones, resuming unfinished ones); never raises for a
    failed run: failures are recorded in the store and counted in the result.

    Every run executes in its own process (one at a time by default; ``jobs`` > 1, several GPU slots in
    ``devices="0,1,2,3"`` x ``runs_per_device``, or ``backend="dask"|"ray"`` run several at once on leased
    devices), so a crash, ``os._exit`` or OOM kill takes down only that run; see ``fedx_bench.scheduler``.
    ``in_process=True`` runs them one after another inside this process instead (no crash isolation).
    ``retries`` re-runs a failed run up to N times, resuming from its checkpoint. ``threads_per_run``: CPU
    threads of every run (default 1 in every mode; part of what a run computes, reused on resume).
    """
    from .scheduler import SchedulerOptions, parse_devices, plan_local, run_parallel

    opts = SchedulerOptions(jobs=jobs, devices=parse_devices(devices), runs_per_device=runs_per_device,
                            backend=backend, scheduler_address=scheduler_address, ray_address=ray_address,
                            retries=retries, threads_per_run=threads_per_run, in_process=in_process)
    if device is not None and opts.devices is not None:
        raise UserError("give either --device or --devices, not both")
    if in_process and backend != "loky":
        raise UserError(f"in-process execution runs locally; it cannot be combined with --backend {backend}")
    cfg = suite if isinstance(suite, SuiteConfig) else load_suite(suite, overrides)
    suite_device = device
    if suite_device is None:  # the suite's own device (e.g. ``device: cpu``) when every run names the same one
        named = {r.device for r in cfg.runs}
        if len(named) == 1 and next(iter(named)) not in (None, "auto"):
            suite_device = next(iter(named))
    plan = plan_local(opts, suite_device) if backend == "loky" else None
    for r in cfg.runs:
        if device is not None:
            r.device = device
        if plan is not None and plan.in_process and opts.devices is not None:
            r.device = plan.devices[0]
        if data_root is not None:  # the command line wins over the suite's data.root
            r.data.root = data_root
    prog = progress if isinstance(progress, Progress) else Progress(progress)
    store = RunStore(results_dir)
    cache = DatasetCache(data_root)
    preflight(cfg.runs, cache)
    store.write_suite(cfg.name, {
        "name": cfg.name, "source": cfg.source, "description": cfg.description,
        "reduced_from": cfg.reduced_from, "run_ids": [r.run_id for r in cfg.runs],
        "labels": {r.run_id: r.label for r in cfg.runs}, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    res = SuiteResult(cfg.name, results_dir=str(results_dir))
    t0 = time.perf_counter()
    if plan is None or not plan.in_process:
        res.outcomes = run_parallel(cfg.runs, results_dir, cfg.name, data_root, prog, opts, suite_device)
        res.wall_seconds = time.perf_counter() - t0
        return res
    prog.suite_start(cfg.name, len(cfg.runs))
    try:
        for run_cfg in cfg.runs:
            res.outcomes.append(_run_in_process(run_cfg, results_dir, cache, prog, cfg.name, retries,
                                                threads_per_run))
            prog.suite_advance()
    finally:
        prog.suite_end()
    res.wall_seconds = time.perf_counter() - t0
    return res


def preflight(runs: Sequence[RunConfig], cache: DatasetCache) -> None:
    """Everything that can be checked before training, for every run, before any run starts (so bad input
    exits 2 and leaves no status behind): the dataset is found and readable, and the data fraction and the
    partition can be made (more clients than samples, a tiny ``train_limit`` or ``fraction``)."""
    from .runner import make_partition, prepare_data

    seen: set[tuple[Any, ...]] = set()
    for r in runs:
        ds = cache.get(r)
        f = r.federation
        key = (id(ds), r.data.fraction, r.seed, f.partition, f.clients, f.beta, f.min_size, f.partition_seed)
        if key in seen:
            continue
        seen.add(key)
        data = prepare_data(r, cache)
        try:
            make_partition(r, data.train_y, ds.num_classes)
        except UserError as e:
            raise type(e)(f"run {r.label}: {' '.join(str(e).split())}") from None


def _run_in_process(cfg: RunConfig, results_dir: str | Path, cache: DatasetCache, prog: Progress, suite: str,
                    retries: int, threads: int | None = None) -> RunOutcome:
    """One run in this process, holding its run lock (so a parallel invocation never writes it too), with retries
    that resume from the last checkpoint. A run another live invocation holds is waited for."""
    import contextlib

    from .scheduler import LOCK_WAIT_SECONDS, _locked_elsewhere, mark_owner, run_lock

    rd = RunStore(results_dir).run(cfg.run_id)
    out = RunOutcome(cfg.run_id, cfg.label, "failed")
    attempt = 0
    waited = False
    while attempt < retries + 1:
        if _locked_elsewhere(rd.path):
            st = rd.status
            prog.log(f"[{cfg.label}] running elsewhere (pid {st.get('pid')} on {st.get('host')}); waiting for it")
            waited = True
            while _locked_elsewhere(rd.path):
                time.sleep(LOCK_WAIT_SECONDS)
        with run_lock(rd.path) as held:
            if not held:  # taken between our look and now: wait again
                waited = True
                time.sleep(LOCK_WAIT_SECONDS)
                continue
            attempt += 1
            if waited and rd.is_done():
                prog.log(f"[{cfg.label}] finished by another invocation")
                return RunOutcome(cfg.run_id, cfg.label, "skipped", note="finished by another invocation")
            if not rd.is_done():
                try:
                    mark_owner(rd, attempt)
                except OSError as e:  # a full or read-only results dir: one line, the suite goes on
                    from .store import one_line_error

                    return RunOutcome(cfg.run_id, cfg.label, "failed", error=one_line_error(e))
            out = execute_run(cfg, results_dir, cache, prog, suite=suite, threads=threads)
        if out.state != "failed":
            break
        st = rd.status
        with contextlib.suppress(OSError):
            rd.set_status(st.get("state", "failed"), attempts=[*st.get("attempts", []), {
                "attempt": attempt, "state": out.state, "error": out.error, "device": st.get("device"),
                "host": st.get("host"), "exit_code": None}])
    return out


def run_one(cfg: RunConfig, results_dir: str | Path = "results", data_root: str | None = None,
            threads: int | None = None) -> RunOutcome:
    """Run a single configuration in this process (notebook convenience; no crash isolation). ``threads``: CPU
    threads for the run (default 1, as in a suite; restored afterwards)."""
    return execute_run(cfg, results_dir, DatasetCache(data_root), threads=threads)


def summary_table(results_dir: str | Path, suite: str | None = None) -> str:
    """The end-of-suite table (probe and kNN vs the random-init encoder) as Markdown."""
    from .reports import render_summary, results_frame

    return render_summary(results_frame(results_dir, suite=suite))


def report(results_dir: str | Path, fmt: str = "md", suite: str | None = None, metric: str = "probe") -> str:
    """Table 1 (ours vs the paper) from stored results, as md, latex or csv."""
    from .reports import render_table1, results_frame

    df = results_frame(results_dir, suite=suite)
    if df.empty:
        return f"No runs found under {results_dir}.\n"
    return render_table1(df, fmt, metric)


def list_suites(suites_dir: str | Path | None = None) -> list[str]:
    d = Path(suites_dir) if suites_dir else SUITES_DIR
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def list_registry(kind: str) -> list[tuple[str, str]]:
    """``methods|datasets|protocols|backbones|suites`` → [(name, description)]."""
    load_builtins()
    if kind == "suites":
        return [(s, "") for s in list_suites()]
    reg = {"methods": METHODS, "datasets": DATASETS, "protocols": EVALUATIONS, "backbones": BACKBONES}[kind]
    out = []
    for name in reg.names():
        meta = reg.meta(name)
        label = f"{name}@{meta['version']}" if "version" in meta else name
        out.append((label, str(meta.get("description", ""))))
    return out

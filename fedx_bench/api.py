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
from .registry import AGGREGATORS, BACKBONES, DATASETS, EVALUATIONS, METHODS, load_builtins
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
) -> SuiteResult:
    """Run every run of a suite (skipping finished ones, resuming unfinished ones); never raises for a
    failed run: failures are recorded in the store and counted in the result.

    One run at a time (the default) runs in this process, as always. More at once (``jobs`` > 1, or several
    GPU slots in ``devices="0,1,2,3"`` x ``runs_per_device``) or ``backend="dask"|"ray"`` fan the runs out,
    each in its own process on a leased device, so a crash takes down only that run; see
    ``fedx_bench.scheduler``. ``retries`` re-runs a failed run up to N times, resuming from its checkpoint.
    """
    from .scheduler import SchedulerOptions, parse_devices, plan_local, run_parallel

    opts = SchedulerOptions(jobs=jobs, devices=parse_devices(devices), runs_per_device=runs_per_device,
                            backend=backend, scheduler_address=scheduler_address, ray_address=ray_address,
                            retries=retries, threads_per_run=threads_per_run)
    if device is not None and opts.devices is not None:
        raise UserError("give either --device or --devices, not both")
    cfg = suite if isinstance(suite, SuiteConfig) else load_suite(suite, overrides)
    plan = plan_local(opts, device) if backend == "loky" else None
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
    for r in cfg.runs:  # preflight: every dataset is found and readable before any run starts
        cache.get(r)
    store.write_suite(cfg.name, {
        "name": cfg.name, "source": cfg.source, "description": cfg.description,
        "reduced_from": cfg.reduced_from, "run_ids": [r.run_id for r in cfg.runs],
        "labels": {r.run_id: r.label for r in cfg.runs}, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    res = SuiteResult(cfg.name, results_dir=str(results_dir))
    t0 = time.perf_counter()
    if plan is None or not plan.in_process:
        res.outcomes = run_parallel(cfg.runs, results_dir, cfg.name, data_root, prog, opts, device)
        res.wall_seconds = time.perf_counter() - t0
        return res
    prog.suite_start(cfg.name, len(cfg.runs))
    try:
        for run_cfg in cfg.runs:
            res.outcomes.append(_run_in_process(run_cfg, results_dir, cache, prog, cfg.name, retries))
            prog.suite_advance()
    finally:
        prog.suite_end()
    res.wall_seconds = time.perf_counter() - t0
    return res


def _run_in_process(cfg: RunConfig, results_dir: str | Path, cache: DatasetCache, prog: Progress, suite: str,
                    retries: int) -> RunOutcome:
    """One run in this process, holding its run lock (so a parallel invocation never writes it too), with retries
    that resume from the last checkpoint."""
    from .scheduler import mark_owner, run_lock

    rd = RunStore(results_dir).run(cfg.run_id)
    out = RunOutcome(cfg.run_id, cfg.label, "failed")
    for attempt in range(1, retries + 2):
        with run_lock(rd.path) as held:
            if not held:
                st = rd.status
                err = f"run is locked by another live process (pid {st.get('pid')} on {st.get('host')})"
                prog.log(f"[{cfg.label}] skipped: {err}")
                return RunOutcome(cfg.run_id, cfg.label, "failed", error=err)
            if not rd.is_done():
                mark_owner(rd, attempt)
            out = execute_run(cfg, results_dir, cache, prog, suite=suite)
        if out.state != "failed":
            break
        st = rd.status
        rd.set_status(st.get("state", "failed"), attempts=[*st.get("attempts", []), {
            "attempt": attempt, "state": out.state, "error": out.error, "device": st.get("device"),
            "host": st.get("host"), "exit_code": None}])
    return out


def run_one(cfg: RunConfig, results_dir: str | Path = "results", data_root: str | None = None) -> RunOutcome:
    """Run a single configuration (notebook convenience)."""
    return execute_run(cfg, results_dir, DatasetCache(data_root))


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
    """``methods|datasets|protocols|backbones|aggregators|suites`` → [(name, description)]."""
    load_builtins()
    if kind == "suites":
        return [(s, "") for s in list_suites()]
    reg = {"methods": METHODS, "datasets": DATASETS, "protocols": EVALUATIONS, "backbones": BACKBONES,
           "aggregators": AGGREGATORS}[kind]
    out = []
    for name in reg.names():
        meta = reg.meta(name)
        label = f"{name}@{meta['version']}" if "version" in meta else name
        out.append((label, str(meta.get("description", ""))))
    return out

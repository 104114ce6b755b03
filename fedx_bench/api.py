"""The Python API a notebook calls; the CLI is a thin layer over these functions.

Here: planning and running suites (``plan_suite``, ``run_suite``, ``run_one``), the reference check and the printed
tables (``summary_table``, ``report``). Re-exported so ``fedx_bench.api.<name>`` is the one place to look: listing
suites and registries (``fedx_bench.listing``), stale-run classification and ``verify`` (``fedx_bench.verify``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunConfig, SuiteConfig, load_suite
from .errors import UserError
from .listing import list_registry as list_registry
from .listing import list_suites as list_suites
from .listing import suite_description as suite_description
from .paths import SUITES_DIR as SUITES_DIR
from .progress import Progress
from .runner import DatasetCache, RunOutcome, execute_run
from .store import RunStore
from .suite import suite_record
from .verify import StaleRuns as StaleRuns
from .verify import VerifyOutcome as VerifyOutcome
from .verify import metric_differences as metric_differences
from .verify import stale_runs
from .verify import verify as verify

STORED_RESULTS = "results"  # the repository's committed store (read-only reference runs)
LOCAL_RESULTS = "results/local"  # the user's own runs (gitignored); `run` writes here by default
REPLACED_DIR = "replaced"  # --rerun moves a finished run's folder to <results>/replaced/<id>-<time>/


def default_results_dirs() -> list[str]:
    """What report/status read by default: the stored store and the user's own runs (those that exist)."""
    return [d for d in (STORED_RESULTS, LOCAL_RESULTS) if (Path(d) / "runs").is_dir()] or [LOCAL_RESULTS]


def results_kind(results_dir: str | Path) -> str:
    """``stored`` for the repository's committed store, ``local`` for anything else (the user's runs)."""
    try:
        return "stored" if Path(results_dir).resolve() == Path(STORED_RESULTS).resolve() else "local"
    except OSError:
        return "local"


@dataclass
class SuiteResult:
    name: str
    outcomes: list[RunOutcome] = field(default_factory=list)
    wall_seconds: float = 0.0
    results_dir: str = LOCAL_RESULTS
    runs: list[RunConfig] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {"done": 0, "skipped": 0, "failed": 0}
        for o in self.outcomes:
            out[o.state] = out.get(o.state, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0


@dataclass
class PlannedRun:
    """One expanded run of a suite, as ``run --dry-run`` shows it."""

    label: str
    run_id: str
    status: str  # new | done here | resume (round k/R) | failed here | ...; "+ stored" when the reference has it


def check_device(device: str, where: str = "--device") -> None:
    """A device this machine has: spelling, and CUDA (and the GPU index) present. Exit 2 before anything runs."""
    from .config import valid_device

    if not valid_device(device):
        raise UserError(f"{where}: {device!r} is not a device; use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"{where} {device}: CUDA is not available on this machine (torch {torch.__version__}); "
                            "use --device cpu or auto")
        idx = int(device[5:]) if ":" in device else 0
        if idx >= torch.cuda.device_count():
            raise UserError(f"{where} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def _suite_config(suite: str | Path | SuiteConfig, overrides: dict[str, Any] | None,
                  sweeps: dict[str, list[Any]] | None, max_runs: int | None) -> SuiteConfig:
    from .config import MAX_RUNS

    if isinstance(suite, SuiteConfig):
        return suite
    return load_suite(suite, overrides, sweeps, MAX_RUNS if max_runs is None else max_runs)


def plan_suite(
    suite: str | Path | SuiteConfig,
    results_dir: str | Path = LOCAL_RESULTS,
    overrides: dict[str, Any] | None = None,
    sweeps: dict[str, list[Any]] | None = None,
    max_runs: int | None = None,
    reference_dir: str | Path | None = STORED_RESULTS,
) -> tuple[SuiteConfig, list[PlannedRun]]:
    """Every run a suite expands to and what ``run`` would do with it; reads the stores, trains and writes nothing."""
    cfg = _suite_config(suite, overrides, sweeps, max_runs)
    store = RunStore(results_dir)
    ref = RunStore(reference_dir) if reference_dir is not None and results_kind(results_dir) != "stored" else None
    out = []
    for r in cfg.runs:
        st = store.run(r.run_id).status
        state = st.get("state", "pending")
        if store.run(r.run_id).is_done():
            what = "done here (skipped; --rerun trains again)"
        elif state == "pending":
            what = "new"
        elif st.get("round"):
            what = f"resume ({state} at round {st.get('round')}/{r.federation.rounds})"
        else:
            what = f"{state} here (trained again)"
        if ref is not None and ref.run(r.run_id).is_done():
            what += f"; stored in {reference_dir}/ (compared after)"
        out.append(PlannedRun(r.label, r.run_id, what))
    return cfg, out


def _preflight(cfg: SuiteConfig, cache: DatasetCache) -> None:
    """Every dataset found and readable and every partition possible before any run starts (nothing written)."""
    from .errors import PartitionError
    from .runner import make_partition, prepare_data

    seen: set[tuple[Any, ...]] = set()
    for r in cfg.runs:
        cache.get(r)
        f = r.federation
        key = (r.data.name, r.data.source, r.data.root, r.data.train_limit, r.data.fraction, r.seed,
               f.partition_seed, f.partition, f.clients, f.beta, f.min_size)
        if key in seen:
            continue
        seen.add(key)
        data = prepare_data(r, cache)
        try:
            make_partition(r, data.train_y, data.dataset.num_classes)
        except PartitionError as e:
            where = f"{cfg.source}: " if cfg.source else ""
            raise PartitionError(f"{where}{r.label}: federation: {e}") from None


def _check_reachable(address: str, flag: str, timeout: float = 5.0) -> None:
    """A cluster address that accepts connections (one clear line instead of a client's retry traceback)."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = u.hostname, u.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise UserError(f"{flag} {address}: expected tcp://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise UserError(f"{flag} {address}: cannot connect ({e.strerror or e})") from None


def _set_aside(store: RunStore, run_id: str) -> None:
    """--rerun: move a finished run's folder out of ``runs/`` (kept, never deleted) so it trains again."""
    src = store.run(run_id).path
    dest = store.root / REPLACED_DIR / f"{run_id}-{time.strftime('%Y%m%dT%H%M%S')}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    src.rename(dest)


def run_suite(
    suite: str | Path | SuiteConfig,
    results_dir: str | Path = LOCAL_RESULTS,
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
    sweeps: dict[str, list[Any]] | None = None,
    max_runs: int | None = None,
    rerun: bool = False,
    tensorboard: bool = False,
    rerun_stale: bool = False,
) -> SuiteResult:
    """Run every run of a suite (skipping finished ones, resuming unfinished ones); never raises for a
    failed run: failures are recorded in the store and counted in the result.

    Every run executes in its own process (one at a time by default; ``jobs`` > 1, several GPU slots in
    ``devices="0,1,2,3"`` x ``runs_per_device``, or ``backend="dask"|"ray"`` run several at once on leased
    devices), so a crash, ``os._exit`` or OOM kill takes down only that run; see ``fedx_bench.scheduler``.
    ``in_process=True`` runs them one after another inside this process instead (no crash isolation).
    ``retries`` re-runs a failed run up to N times, resuming from its checkpoint. ``threads_per_run``: CPU
    threads of every run (default 1 in every mode; part of what a run computes, reused on resume).
    ``rerun`` trains runs already finished in ``results_dir`` again (their old folder is moved to
    ``results_dir/replaced/``). ``tensorboard`` writes event files per run (``fedx_bench.tracking``).
    Bad input (config, device, data root, dataset, partition) raises ``UserError`` before anything is written.
    Stored finished runs made by other code are counted and reported (``stale_runs``); ``rerun_stale`` moves
    them to ``<results>/stale/<run_id>/<time>/`` (nothing is deleted) and retrains them.
    """
    from .scheduler import SchedulerOptions, parse_devices, plan_local, run_parallel

    opts = SchedulerOptions(jobs=jobs, devices=parse_devices(devices), runs_per_device=runs_per_device,
                            backend=backend, scheduler_address=scheduler_address, ray_address=ray_address,
                            retries=retries, threads_per_run=threads_per_run, in_process=in_process)
    if device is not None and opts.devices is not None:
        raise UserError("give either --device or --devices, not both")
    if in_process and backend != "loky":
        raise UserError(f"in-process execution runs locally; it cannot be combined with --backend {backend}")
    if device is not None:
        if backend == "loky":
            check_device(device)
        else:
            from .config import valid_device

            if not valid_device(device):
                raise UserError(f"--device: {device!r} is not a device; use auto, cpu, cuda or cuda:N")
    if backend == "dask" and scheduler_address:
        _check_reachable(scheduler_address, "--scheduler-address")
    if data_root is not None and not Path(data_root).is_dir():
        raise UserError(f"--data-root {data_root}: no such directory")
    if rerun and results_kind(results_dir) == "stored":
        raise UserError(f"--rerun into the stored reference store {results_dir}/ is refused; "
                        f"re-run into {LOCAL_RESULTS} (the default)")
    if tensorboard:
        from .tracking import require_tensorboard

        require_tensorboard()
    cfg = _suite_config(suite, overrides, sweeps, max_runs)
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
        if tensorboard:
            r.log.tensorboard = True
        if r.log.tensorboard:
            from .tracking import require_tensorboard

            require_tensorboard()
    if backend == "loky":
        for dev in sorted({r.device for r in cfg.runs} - {"auto", "cpu"}):
            check_device(dev, "device")
    prog = progress if isinstance(progress, Progress) else Progress(progress)
    store = RunStore(results_dir)
    cache = DatasetCache(data_root)
    _preflight(cfg, cache)
    if rerun:
        for r in cfg.runs:
            if store.run(r.run_id).is_done():
                _set_aside(store, r.run_id)
    stale = stale_runs(store, [r.run_id for r in cfg.runs])
    if stale.message:
        prog.log(f"suite {cfg.name}: {stale.message}" + ("; retraining them (--rerun-stale)" if rerun_stale and
                                                           stale.ids else ""))
    if rerun_stale:
        stale.archive(store)
    store.write_suite(cfg.name, suite_record(cfg, time.strftime("%Y-%m-%dT%H:%M:%S%z")))
    res = SuiteResult(cfg.name, results_dir=str(results_dir), runs=list(cfg.runs))
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


def check_reference(res: SuiteResult, reference_dir: str | Path = STORED_RESULTS) -> str | None:
    """The one line saying whether a suite's runs reproduce the stored reference runs of the same configs (None
    when the runs are in the reference store itself)."""
    from .reference import compare_to_reference

    if results_kind(res.results_dir) == "stored" or not Path(reference_dir).is_dir():
        return None if results_kind(res.results_dir) == "stored" else \
            f"reference: no stored results at {reference_dir}/ (outside a checkout of the repository)"
    return compare_to_reference(res.runs, res.results_dir, reference_dir).line()


def _run_in_process(cfg: RunConfig, results_dir: str | Path, cache: DatasetCache, prog: Progress, suite: str,
                    retries: int, threads: int | None = None) -> RunOutcome:
    """One run in this process, holding its run lock (so a parallel invocation never writes it too), with retries
    that resume from the last checkpoint. A run another live invocation holds is waited for."""
    import contextlib

    from .procutil import locked_elsewhere
    from .scheduler import LOCK_WAIT_SECONDS, mark_owner, run_lock

    rd = RunStore(results_dir).run(cfg.run_id)
    out = RunOutcome(cfg.run_id, cfg.label, "failed")
    attempt = 0
    waited = False
    while attempt < retries + 1:
        if locked_elsewhere(rd.path):
            st = rd.status
            prog.log(f"[{cfg.label}] running elsewhere (pid {st.get('pid')} on {st.get('host')}); waiting for it")
            waited = True
            while locked_elsewhere(rd.path):
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


def run_one(cfg: RunConfig, results_dir: str | Path = LOCAL_RESULTS, data_root: str | None = None,
            threads: int | None = None) -> RunOutcome:
    """Run a single configuration in this process (notebook convenience; no crash isolation). ``threads``: CPU
    threads for the run (default 1, as in a suite; restored afterwards)."""
    return execute_run(cfg, results_dir, DatasetCache(data_root), threads=threads)


def summary_table(results_dir: str | Path, suite: str | None = None) -> str:
    """The end-of-suite table (probe and kNN vs the random-init encoder) as Markdown."""
    from .reports import render_summary, results_frame
    from .reports.settings import setting_tables

    df = results_frame(results_dir, suite=suite)
    tabs = setting_tables(df[df["state"] == "done"]) if len(df) else []
    if len(tabs) < 2:
        return render_summary(df)
    return "\n".join(f"### {t.title}\n\n{render_summary(t.runs)}" for t in tabs)  # one table per setting


def report(results_dir: str | Path | Sequence[str | Path], fmt: str = "md", suite: str | None = None,
           metric: str = "probe", setting: str | None = None,
           baseline_dirs: Sequence[str | Path] = ()) -> str:
    """Table-1-style tables from stored results, one per setting (never a cell across settings), as md, latex or
    csv. ``suite``: only that suite's runs; ``setting``: only settings whose id starts with this prefix;
    ``baseline_dirs``: more results directories whose runs of the same settings join the tables (a new method
    beside the stored baselines)."""
    import pandas as pd

    from .reports import results_frame
    from .reports.settings import render_setting_tables, select_settings

    if suite and ("/" in suite or suite.endswith((".yaml", ".yml"))):  # a path that is neither a folder nor a file
        raise UserError(f"{suite}: no such results directory or suite file")
    roots = [results_dir] if isinstance(results_dir, (str, Path)) else list(results_dir)
    for r in [*roots, *baseline_dirs]:
        if not Path(r).is_dir():
            raise UserError(f"results directory not found: {r}")
    df = results_frame(*roots, suite=suite)
    if df.empty:
        return f"No runs found under {', '.join(map(str, roots))}.\n"
    if setting:
        df = select_settings(df, setting)
    if baseline_dirs:
        base = results_frame(*baseline_dirs)
        base = base[base["setting_id"].isin(set(df["setting_id"])) & ~base["run_id"].isin(set(df["run_id"]))]
        df = pd.concat([df, base], ignore_index=True) if len(base) else df
    return render_setting_tables(df, fmt, metric)

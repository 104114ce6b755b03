"""The Python API a notebook calls; the CLI is a thin layer over these functions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunConfig, SuiteConfig, load_suite
from .errors import UserError
from .paths import SUITES_DIR
from .progress import Progress
from .registry import AGGREGATORS, BACKBONES, DATASETS, EVALUATIONS, METHODS, load_builtins
from .runner import DatasetCache, RunOutcome, execute_run
from .store import RunStore

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
    store.write_suite(cfg.name, {
        "name": cfg.name, "source": cfg.source, "description": cfg.description,
        "reduced_from": cfg.reduced_from, "run_ids": [r.run_id for r in cfg.runs],
        "labels": {r.run_id: r.label for r in cfg.runs}, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
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


def list_suites(suites_dir: str | Path | None = None) -> list[str]:
    d = Path(suites_dir) if suites_dir else SUITES_DIR
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def suite_description(name: str, suites_dir: str | Path | None = None) -> str:
    """A bundled suite's ``description`` (read from its YAML without expanding it; empty if unreadable)."""
    import yaml

    p = (Path(suites_dir) if suites_dir else SUITES_DIR) / f"{name}.yaml"
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return ""
    return " ".join(str(doc.get("description", "")).split()) if isinstance(doc, dict) else ""


def list_registry(kind: str) -> list[tuple[str, str]]:
    """``methods|datasets|protocols|backbones|aggregators|suites`` → [(name, description)]."""
    load_builtins()
    if kind == "suites":
        return [(s, suite_description(s)) for s in list_suites()]
    reg = {"methods": METHODS, "datasets": DATASETS, "protocols": EVALUATIONS, "backbones": BACKBONES,
           "aggregators": AGGREGATORS}[kind]
    out = []
    for name in reg.names():
        meta = reg.meta(name)
        label = f"{name}@{meta['version']}" if "version" in meta else name
        out.append((label, str(meta.get("description", ""))))
    return out


# --------------------------------------------------------------------------- code versions of stored runs (issue 10)


@dataclass
class StaleRuns:
    """Finished runs of a suite made by other code: ``changed`` (numerics-relevant source differs), ``unknown``
    (cannot be told: dirty tree or no source hash), ``cosmetic`` (only reports/CLI code differs: same numbers)."""

    changed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    cosmetic: list[str] = field(default_factory=list)
    total_done: int = 0

    @property
    def ids(self) -> list[str]:
        """The runs ``--rerun-stale`` retrains: changed or unknown code."""
        return self.changed + self.unknown

    @property
    def message(self) -> str:
        n = len(self.changed) + len(self.unknown) + len(self.cosmetic)
        if not n:
            return ""
        parts = []
        if self.changed:
            parts.append(f"{len(self.changed)} by code whose training/evaluation files differ (numbers can change)")
        if self.unknown:
            parts.append(f"{len(self.unknown)} by code that cannot be identified (uncommitted edits, no source hash;"
                         " numbers may differ)")
        if self.cosmetic:
            parts.append(f"{len(self.cosmetic)} by code that differs only in reports/CLI (numbers unchanged)")
        hint = f"; --rerun-stale retrains {len(self.ids)} of them" if self.ids else ""
        return f"{n} of {self.total_done} stored finished runs were made by other code: " + "; ".join(parts) + hint

    def archive(self, store: RunStore) -> list[Path]:
        """Move each stale run folder to ``stale/<run_id>/<time>/`` so that it is retrained; returns the new
        places."""
        import shutil

        stamp = time.strftime("%Y%m%dT%H%M%S")
        out = []
        for rid in self.ids:
            src = store.run(rid).path
            if src.is_dir():
                dst = store.root / "stale" / rid / stamp
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(src), str(dst))
                out.append(dst)
        return out


def stale_runs(store: RunStore | str | Path, run_ids: Sequence[str]) -> StaleRuns:
    """Classify the finished runs among ``run_ids`` by whether the current code made them."""
    from .provenance import code_record, same_code
    from .store import read_json

    st = store if isinstance(store, RunStore) else RunStore(store)
    cur = code_record()
    out = StaleRuns()
    for rid in run_ids:
        rd = st.run(rid)
        if not rd.is_done():
            continue
        out.total_done += 1
        env = read_json(rd.file("env.json"), {}) or {}
        same = same_code(env, cur)
        if same is None:
            out.unknown.append(rid)
        elif not same:
            out.changed.append(rid)
        elif (env.get("code") or {}).get("source_sha256", cur["source_sha256"]) != cur["source_sha256"] or (
                not env.get("code") and str(env.get("git_commit")) != str(cur.get("git_commit"))):
            out.cosmetic.append(rid)
    return out


# --------------------------------------------------------------------------- verify (issue 10)

TIMING_KEYS = ("seconds", "wall", "elapsed", "eta", "peak_")


@dataclass
class VerifyOutcome:
    """One re-run: ``exact`` when every stored metric reproduced bit for bit; else the largest difference."""

    run_id: str
    label: str
    state: str  # reproduces exactly | differs | failed | skipped
    max_diff: float = 0.0
    where: str = ""
    detail: str = ""

    def line(self) -> str:
        if self.state == "reproduces exactly":
            return f"{self.run_id} {self.label}: reproduces exactly"
        if self.state == "differs":
            return f"{self.run_id} {self.label}: differs, largest metric difference {self.max_diff:.6g} ({self.where})"
        return f"{self.run_id} {self.label}: {self.state}" + (f" ({self.detail})" if self.detail else "")


def _numeric_leaves(d: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            if any(t in str(k) for t in TIMING_KEYS):
                continue
            out.update(_numeric_leaves(v, f"{prefix}{k}."))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix.rstrip(".")] = float(d)
    return out


def metric_differences(stored: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[float, str]:
    """Largest |stored − new| over every numeric metric of every round (timings excluded): (value, where).
    A round or metric present on one side only counts as an infinite difference."""
    a = {int(r["round"]): _numeric_leaves(r) for r in stored}
    b = {int(r["round"]): _numeric_leaves(r) for r in new}
    worst, where = 0.0, ""
    for rnd in sorted(set(a) | set(b)):
        if rnd not in a or rnd not in b:
            return float("inf"), f"round {rnd} only on one side"
        for k in sorted(set(a[rnd]) | set(b[rnd])):
            x, y = a[rnd].get(k), b[rnd].get(k)
            diff = float("inf") if x is None or y is None else abs(x - y)
            if diff != diff:  # NaN on one side or both
                diff = 0.0 if (x != x and y != y) else float("inf")
            if diff > worst:
                worst, where = diff, f"round {rnd} {k}: stored {x} vs re-run {y}"
    return worst, where


def verify(results_dir: str | Path, run_ids: Sequence[str] = (), sample: int | None = None,
           data_root: str | None = None, seed: int = 0,
           on_result: Any = None) -> list[VerifyOutcome]:
    """Re-run stored finished runs on CPU into a temporary directory, each with the thread count recorded in its
    env.json (CPU runs are bit-exact only at equal thread counts), and compare every stored per-round metric.
    ``run_ids``: these runs (default: every finished run); ``sample``: a random sample of that many (seeded)."""
    import random

    import torch

    from .config import run_config_from_dict
    from .store import read_json

    root = Path(results_dir)
    if not root.is_dir():
        raise UserError(f"results directory not found: {results_dir}")
    store = RunStore(root)
    done = [rd.run_id for rd in store.run_dirs() if rd.is_done()]
    ids = list(run_ids) or done
    unknown = [i for i in ids if not store.run(i).path.is_dir()]
    if unknown:
        raise UserError(f"{results_dir}: no stored run {', '.join(unknown)}")
    if sample is not None and sample < len(ids):
        ids = sorted(random.Random(seed).sample(ids, sample))
    out: list[VerifyOutcome] = []
    threads_before = torch.get_num_threads()
    try:
        for rid in ids:
            rd = store.run(rid)
            spec = read_json(rd.file("spec.json"), None)
            env = read_json(rd.file("env.json"), {}) or {}
            label = str((spec or {}).get("label", ""))
            if not rd.is_done() or not isinstance(spec, dict):
                res = VerifyOutcome(rid, label, "skipped", detail="not a finished run with a readable spec.json")
            else:
                res = _verify_one(rd, spec, env, label, data_root, run_config_from_dict, threads_before)
            out.append(res)
            if on_result is not None:
                on_result(res)
    finally:
        torch.set_num_threads(threads_before)
    return out


def _verify_one(rd: Any, spec: dict[str, Any], env: dict[str, Any], label: str, data_root: str | None,
                build: Any, default_threads: int) -> VerifyOutcome:
    import tempfile

    import torch

    from .store import read_json

    rid = rd.run_id
    try:
        cfg = build(dict(spec["config"]), f"{rd.file('spec.json')}")
    except UserError as e:
        return VerifyOutcome(rid, label, "skipped", detail=f"config no longer valid: {e}")
    cfg.device = "cpu"
    if data_root is not None:
        cfg.data.root = data_root
    threads = ((env.get("device") or {}).get("torch_threads")) or default_threads
    torch.set_num_threads(int(threads))
    with tempfile.TemporaryDirectory(prefix="fedx-verify-") as tmp:
        try:
            outcome = execute_run(cfg, tmp, DatasetCache(data_root), Progress("quiet"))
        except UserError as e:
            return VerifyOutcome(rid, label, "failed", detail=str(e))
        if outcome.state != "done":
            return VerifyOutcome(rid, label, "failed", detail=outcome.error or outcome.state)
        new_rd = RunStore(tmp).run(cfg.run_id)
        new = new_rd.read_metrics()
        new_eval = read_json(new_rd.file("eval.json"), {}) or {}
    worst, where = metric_differences(rd.read_metrics(), new)
    # eval.json too: Last/Best summaries and what lives only there (semi-supervised fine-tune results)
    e_worst, e_where = metric_differences([{"round": -1, **(read_json(rd.file("eval.json"), {}) or {})}],
                                          [{"round": -1, **new_eval}])
    if e_worst > worst:
        worst, where = e_worst, "eval.json " + e_where.replace("round -1 ", "")
    note = "" if cfg.run_id == rid else f"config now hashes to {cfg.run_id}"
    if worst == 0.0:
        return VerifyOutcome(rid, label, "reproduces exactly", detail=note)
    return VerifyOutcome(rid, label, "differs", worst, where, note)

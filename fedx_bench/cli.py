"""``fedx-bench`` command line: a thin layer over ``fedx_bench.api``. Bad input exits 2 with one line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


def _parse_value(key: str, text: str, flag: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise UserError(f"{flag} {key}={text}: {text!r} is not a YAML value (quote strings with commas or colons)") \
            from None


def _parse_set(items: list[str], flag: str = "--set") -> tuple[dict[str, object], dict[str, list[object]]]:
    """``--set KEY=VALUE`` → overrides; ``--set KEY=a,b,c`` and ``--sweep KEY=a,b,c`` → grid axes."""
    from .config import split_sweep

    sets: dict[str, object] = {}
    sweeps: dict[str, list[object]] = {}
    for it in items:
        if "=" not in it:
            raise UserError(f"{flag} expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        k = k.strip()
        if not k:
            raise UserError(f"{flag} expects KEY=VALUE, got {it!r} (empty key)")
        parts = split_sweep(v)
        if parts is not None or flag == "--sweep":
            sweeps[k] = [_parse_value(k, x.strip(), flag) for x in (parts if parts is not None else [v])]
            sets.pop(k, None)
        else:
            sets[k] = _parse_value(k, v, flag)
            sweeps.pop(k, None)
    return sets, sweeps


def _results_dirs(args: argparse.Namespace, positional: str) -> list[str]:
    """One convention: ``--results DIR`` (repeatable); the old positional form still works as an alias."""
    from .api import default_results_dirs

    dirs = list(getattr(args, positional) or []) + list(args.results or [])
    dirs = dirs or default_results_dirs()
    for d in dirs:
        if not Path(d).is_dir():
            raise UserError(f"results directory not found: {d}")
    return dirs


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .api import LOCAL_RESULTS, STORED_RESULTS
    from .config import MAX_RUNS

    p = argparse.ArgumentParser(prog="fedx-bench", description="Reproducibility benchmark for FedX (ECCV 2022).")
    p.add_argument("--version", action="version", version=f"fedx-bench {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    r = sub.add_parser("run", help="run a suite YAML (finished runs are skipped, unfinished ones resume)")
    r.add_argument("suite", help="path to a suite YAML, or the name of a bundled suite (see `list suites`)")
    r.add_argument("--results", default=LOCAL_RESULTS, metavar="DIR",
                   help=f"where the runs are written (default: {LOCAL_RESULTS}; the repository's stored runs are in "
                        f"{STORED_RESULTS}/)")
    r.add_argument("--reference", default=STORED_RESULTS, metavar="DIR",
                   help=f"stored runs to compare with after the suite (default: {STORED_RESULTS})")
    r.add_argument("--data-root", default=None, metavar="DIR",
                   help="dataset root (default: the suite's data.root, $FEDX_BENCH_DATA, then a user cache)")
    r.add_argument("--device", default=None, help="auto|cpu|cuda|cuda:N (default: the suite's, i.e. auto)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key in every run (wins over base, cases and grid), e.g. --set "
                        "federation.rounds=2; KEY=a,b,c sweeps it (a grid axis)")
    r.add_argument("--sweep", action="append", default=[], metavar="KEY=A,B,...",
                   help="add (or replace) a grid axis, e.g. --sweep federation.beta=0.1,0.5")
    r.add_argument("--dry-run", action="store_true",
                   help="print every expanded run (label, run id, new/stored) and train nothing")
    r.add_argument("--rerun", action="store_true",
                   help="train runs already finished in --results again (their old folder moves to replaced/)")
    r.add_argument("--max-runs", type=int, default=MAX_RUNS, metavar="N",
                   help=f"refuse a suite that expands to more runs than this (default {MAX_RUNS})")
    r.add_argument("--tensorboard", action="store_true",
                   help="write TensorBoard event files per run (<run dir>/tensorboard/; needs the tensorboard extra)")
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument("--log", action="store_true", help="plain timestamped progress lines instead of bars")
    par = r.add_argument_group("parallel runs (each run in its own process; see `fedx_bench.scheduler`)")
    par.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                     help="runs at once, each in its own process (default: 1; with --devices: one per device slot)")
    par.add_argument("--devices", default=None, metavar="LIST",
                     help="GPU indices to lease to runs, e.g. 0,1,2,3, or cpu (default: every GPU, else cpu)")
    par.add_argument("--runs-per-device", type=int, default=1, metavar="K", help="runs sharing one GPU (default 1)")
    par.add_argument("--backend", choices=["loky", "dask", "ray"], default="loky",
                     help="local processes (loky, default), or a Dask or Ray cluster")
    par.add_argument("--scheduler-address", default=None, metavar="ADDR", help="Dask scheduler, e.g. tcp://h:8786")
    par.add_argument("--address", default=None, metavar="ADDR",
                     help="Ray cluster address (default: start a local one on this machine's cores)")
    par.add_argument("--retries", type=int, default=0, metavar="N",
                     help="re-run a failed run up to N times, resuming from its last checkpoint")
    par.add_argument("--threads-per-run", type=int, default=None, metavar="T",
                     help="CPU threads per run (default 1, whatever --jobs; recorded, reused on resume)")
    par.add_argument("--in-process", action="store_true", help="run the runs in this process (no crash isolation)")
    r.add_argument("--rerun-stale", action="store_true",
                   help="retrain the finished runs of --results that other code made (old folders are kept)")
    _add_report_parser(sub)
    co = sub.add_parser("collect", help="all runs of one or more results directories as one table (Parquet + CSV)")
    co.add_argument("results_dirs", nargs="*", metavar="DIR", help="results directories (alias of --results)")
    co.add_argument("--results", action="append", default=None, metavar="DIR",
                    help="results directory (repeatable; default: results and results/local)")
    co.add_argument("--out", default="runs", help="output path without suffix: writes OUT.parquet and OUT.csv")
    _add_compare_parser(sub)
    _add_verify_parser(sub)
    st = sub.add_parser("status", help="every run of results directories: state, round, metrics, device, ETA")
    st.add_argument("results_dirs", nargs="*", metavar="DIR", help="results directories (alias of --results)")
    st.add_argument("--results", action="append", default=None, metavar="DIR",
                    help="results directory (repeatable; default: results and results/local, labelled stored/local)")
    st.add_argument("--suite", default=None, help="only runs of this suite (its not-yet-started runs included)")
    ls = sub.add_parser("list", help="list registered methods, datasets, protocols, backbones, aggregators or suites")
    ls.add_argument("kind", choices=["methods", "datasets", "protocols", "backbones", "aggregators", "suites"],
                    help="what to list (suites: the bundled suites with their descriptions)")
    return p


def _emit(text: str, out: str | None) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
        print(f"wrote {out}")
    else:
        print(text, end="")


def _resolve_suite_path(s: str) -> str:
    from .api import SUITES_DIR

    if os.path.exists(s):
        return s
    cand = SUITES_DIR / (s if s.endswith(".yaml") else f"{s}.yaml")
    return str(cand) if cand.exists() else s


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:  # bare `fedx-bench`: the help, not an error
        parser.print_help()
        return 0
    try:
        return _dispatch(args)
    except UserError as e:
        msg = " ".join(str(e).split())
        print(f"fedx-bench: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `fedx-bench list suites | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("fedx-bench: interrupted; finished runs and per-round checkpoints are kept", file=sys.stderr)
        return 130
    except OSError as e:  # disk full, read-only, unwritable: one line naming the path; 1 for run, 2 for a destination
        print(f"fedx-bench: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1 if args.cmd == "run" else 2


def _dispatch(args: argparse.Namespace) -> int:
    from . import api

    if args.cmd == "list":
        for name, desc in api.list_registry(args.kind):
            print(f"{name:32s} {desc}".rstrip())
        return 0
    if args.cmd in ("report", "compare", "verify"):
        return _REPORTING[args.cmd](args)
    if args.cmd == "collect":
        args.results_dirs = _results_dirs(args, "results_dirs")
        if Path(args.out).parent != Path("") and not Path(args.out).parent.is_dir():
            raise UserError(f"collect --out {args.out}: folder {Path(args.out).parent} does not exist")
        for d in args.results_dirs:
            if not Path(d).is_dir():
                raise UserError(f"results directory not found: {d}")
    if args.cmd == "collect":
        from .reports import collect, export

        ctx = _warnings_as_lines()
        try:
            df = collect(args.results_dirs)
        finally:
            ctx.__exit__(None, None, None)
        print(f"{len(df)} runs -> " + ", ".join(str(f) for f in export(df, args.out)))
        return 0
    if args.cmd == "status":
        return _status(args)
    if args.cmd == "run":
        return _run(args)
    return 2


def _status(args: argparse.Namespace) -> int:
    from .api import results_kind
    from .status import render_status, status_rows

    dirs = _results_dirs(args, "results_dirs")
    rows = []
    for d in dirs:
        if args.suite is not None and len(dirs) > 1 and not (Path(d) / "suites" / f"{args.suite}.json").exists():
            continue
        for row in status_rows(d, args.suite):
            row.store = results_kind(d) if len(dirs) > 1 else None
            rows.append(row)
    if args.suite is not None and not rows:
        status_rows(dirs[0], args.suite)  # raises the one-line "no suite ... (known: ...)" error
    print(render_status(rows), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    from . import api

    sets, sweeps = _parse_set(args.set)
    more_sets, more_sweeps = _parse_set(args.sweep, "--sweep")
    sweeps.update(more_sweeps)
    sets.update(more_sets)
    if args.max_runs < 1:
        raise UserError(f"--max-runs must be >= 1, got {args.max_runs}")
    suite = _resolve_suite_path(args.suite)
    if args.dry_run:
        cfg, planned = api.plan_suite(suite, args.results, sets, sweeps, args.max_runs, args.reference)
        w = max([len(p.label) for p in planned] + [5])
        print(f"suite {cfg.name}: {len(planned)} runs (dry run: nothing is trained or written)")
        print(f"{'label'.ljust(w)}  run id            status")
        for p in planned:
            print(f"{p.label.ljust(w)}  {p.run_id}  {p.status}")
        return 0
    mode = "quiet" if args.quiet else ("log" if args.log else "auto")
    res = api.run_suite(suite, args.results, args.data_root, args.device, mode, sets, jobs=args.jobs,
                        devices=args.devices, runs_per_device=args.runs_per_device, backend=args.backend,
                        scheduler_address=args.scheduler_address, ray_address=args.address, retries=args.retries,
                        threads_per_run=args.threads_per_run, sweeps=sweeps, max_runs=args.max_runs,
                        rerun=args.rerun, tensorboard=args.tensorboard, in_process=args.in_process,
                        rerun_stale=args.rerun_stale)
    c = res.counts
    print(api.summary_table(args.results, res.name))
    other = "".join(f", {n} {k}" for k, n in c.items() if k not in ("done", "skipped", "failed") and n)
    skipped = f" (already finished in {res.results_dir}/; --rerun trains them again)" if c.get("skipped") else ""
    print(f"suite {res.name}: {c.get('done', 0)} done, {c.get('skipped', 0)} skipped{skipped}, "
          f"{c.get('failed', 0)} failed{other} in {res.wall_seconds:.0f} s; results in {res.results_dir}/runs/")
    for o in res.outcomes:
        if o.state == "failed":
            tb = f"{res.results_dir}/runs/{o.run_id}/traceback.txt"
            see = f"; see {tb}" if Path(tb).exists() else ""  # a full or read-only disk may have none
            print(f"  FAILED {o.label} ({o.run_id}): {o.error}{see}")
    line = api.check_reference(res, args.reference)
    if line:
        print(line)
    return 0 if res.ok else 1


# --------------------------------------------------------------------------- report, compare, verify (issue 10)


def _add_report_parser(sub: Any) -> None:
    rep = sub.add_parser("report", help="Table-1-style tables, one per setting, and the paper-style report folder")
    rep.add_argument("source", help="a results directory, or a suite name / suite YAML (its runs under --results)")
    rep.add_argument("--format", choices=["md", "latex", "csv"], default="md", help="format of the printed tables")
    rep.add_argument("--suite", default=None, help="with a results directory: only runs of this suite")
    rep.add_argument("--setting", default=None, metavar="PREFIX", help="only the setting(s) whose id starts so")
    rep.add_argument("--metric", choices=["probe", "knn"], default="probe",
                     help="the tables' metric: linear probe (default) or kNN top-1")
    rep.add_argument("--out", default=None, help="write the tables to this file instead of stdout")
    rep.add_argument("--results", action="append", default=None, metavar="DIR",
                     help="with a suite: the results directories holding its runs (default: results); with a "
                          "results directory: stored baselines whose runs of the same settings join the tables")
    rep.add_argument("--reports-dir", default="reports", help="report folders go to REPORTS_DIR/<name>/")
    rep.add_argument("--no-files", action="store_true", help="only print the tables; write no report folder")
    rep.add_argument("--strict", action="store_true", help="exit 1 when no finished run is found")


def _add_compare_parser(sub: Any) -> None:
    cp = sub.add_parser("compare", help="new runs beside the stored baselines of their setting, with statistics")
    cp.add_argument("--baseline", nargs="+", required=True, metavar="DIR", help="stored results directories")
    cp.add_argument("--new", nargs="+", required=True, metavar="DIR", help="results directories with the new runs")
    cp.add_argument("--metric", nargs="+", choices=["probe_last", "probe_best", "knn_last"], default=["probe_last"],
                    help="metrics to compare (default: probe_last, the final-round linear probe)")
    cp.add_argument("--format", choices=["md", "latex", "csv"], default="md", help="output format (default: md)")
    cp.add_argument("--out", default=None, help="write to this file instead of stdout")
    cp.add_argument("--strict", action="store_true",
                    help="exit 1 when no setting overlaps or any difference is flagged (mixed code, partitions)")


def _add_verify_parser(sub: Any) -> None:
    vp = sub.add_parser("verify", help="re-run stored runs on CPU in a temporary directory; exact or how far off")
    vp.add_argument("results_dir", metavar="RESULTS", help="results directory whose stored runs are re-run")
    vp.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to re-run (default: every finished run)")
    vp.add_argument("--sample", type=int, default=None, metavar="N", help="a random sample of N of them (seed 0)")
    vp.add_argument("--data-root", default=None, help="dataset root (default: each run's data.root)")
    vp.add_argument("--strict", action="store_true", help="exit 1 when any run does not reproduce exactly")


def _check_dirs(dirs: list[str]) -> None:
    for d in dirs:
        if not Path(d).is_dir():
            raise UserError(f"results directory not found: {d}")


def _warnings_as_lines() -> Any:
    """Warnings about skipped (corrupt) runs as one ``fedx-bench: warning: ...`` line each on stderr."""
    import warnings

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("always")
    warnings.showwarning = lambda msg, *a, **k: print(f"fedx-bench: warning: {msg}", file=sys.stderr)
    return ctx


def _cmd_report(args: argparse.Namespace) -> int:
    from . import api
    from .reports import build_report

    ctx = _warnings_as_lines()
    try:
        src = Path(args.source)
        if src.is_dir():
            _check_dirs(args.results or [])
            text = api.report(src, args.format, args.suite, args.metric, args.setting, args.results or ())
        else:
            roots = args.results or ["results"]
            name = src.stem if src.suffix in (".yaml", ".yml") else args.source
            if src.suffix not in (".yaml", ".yml") and ("/" in args.source or args.source.startswith(".")) \
                    or (src.suffix in (".yaml", ".yml") and not src.exists()):
                raise UserError(f"results directory or suite file not found: {args.source}")
            _check_dirs(roots)
            known = set(api.list_suites()) | {p.stem for r in roots for p in (Path(r) / "suites").glob("*.json")}
            if name not in known:
                raise UserError(f"not a results directory, suite YAML or known suite: {args.source}")
            text = api.report(roots, args.format, name, args.metric, args.setting)
        _emit(text, args.out)
        if not args.no_files:
            res = build_report(src if src.is_dir() else args.source, args.reports_dir,
                               None if src.is_dir() else args.results)
            absent = "; ".join(f"{k} ({v})" for k, v in res.absent.items()) or "none"
            print(f"report folder: {res.index} ({len(res.files)} files); not produced: {absent}")
        return 1 if (args.strict and text.startswith("No ")) else 0
    finally:
        ctx.__exit__(None, None, None)


def _cmd_compare(args: argparse.Namespace) -> int:
    from .reports import compare

    _check_dirs(args.baseline + args.new)
    ctx = _warnings_as_lines()
    try:
        cmp = compare(args.baseline, args.new, tuple(args.metric))
    finally:
        ctx.__exit__(None, None, None)
    _emit(cmp.render(args.format), args.out)
    return 1 if (args.strict and (cmp.no_overlap or len(cmp.flagged))) else 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from . import api

    _check_dirs([args.results_dir])
    res = api.verify(args.results_dir, args.run_ids, args.sample, args.data_root,
                     on_result=lambda r: print(r.line(), flush=True))
    n_exact = sum(r.state == "reproduces exactly" for r in res)
    print(f"{n_exact} of {len(res)} runs reproduce exactly; "
          f"{sum(r.state == 'differs' for r in res)} differ; {sum(r.state in ('failed', 'skipped') for r in res)} "
          "could not be re-run")
    return 1 if (args.strict and n_exact < len(res)) else 0


_REPORTING = {"report": _cmd_report, "compare": _cmd_compare, "verify": _cmd_verify}


if __name__ == "__main__":
    sys.exit(main())

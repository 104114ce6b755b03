"""``fedx-bench`` command line: a thin layer over ``fedx_bench.api``. Bad input exits 2 with one line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from .errors import UserError


def _parse_set(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for it in items:
        if "=" not in it:
            raise UserError(f"--set expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedx-bench", description="Reproducibility benchmark for FedX (ECCV 2022).")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a suite YAML (finished runs are skipped, unfinished ones resume)")
    r.add_argument("suite", help="path to a suite YAML, or the name of a bundled suite (see `list suites`)")
    r.add_argument("--results", default="results", help="results directory (default: results)")
    r.add_argument("--data-root", default=None, help="dataset root (default: $FEDX_BENCH_DATA, then a user cache)")
    r.add_argument("--device", default=None, help="auto|cpu|cuda|cuda:N (default: the suite's, i.e. auto)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a base config key, e.g. --set federation.rounds=2")
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument("--log", action="store_true", help="plain progress lines instead of bars")
    par = r.add_argument_group("parallel runs (each run in its own process; see `fedx_bench.scheduler`)")
    par.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                     help="runs at once, each in its own process (default: 1; with --devices: one per device slot)")
    par.add_argument("--devices", default=None, metavar="LIST",
                     help="GPU indices to lease to runs, e.g. 0,1,2,3, or cpu (default: every GPU, else cpu)")
    par.add_argument("--runs-per-device", type=int, default=1, metavar="K", help="runs sharing one GPU (default 1)")
    par.add_argument("--backend", choices=["loky", "dask", "ray"], default="loky",
                     help="local processes (loky, default), or a Dask or Ray cluster")
    par.add_argument("--scheduler-address", default=None, metavar="ADDR", help="Dask scheduler, e.g. tcp://h:8786")
    par.add_argument("--address", default=None, metavar="ADDR", help="Ray cluster address (default: start one)")
    par.add_argument("--retries", type=int, default=0, metavar="N",
                     help="re-run a failed run up to N times, resuming from its last checkpoint")
    par.add_argument("--threads-per-run", type=int, default=None, metavar="T",
                     help="CPU threads per run (default 1, whatever --jobs; recorded, reused on resume)")
    par.add_argument("--in-process", action="store_true", help="run the runs in this process (no crash isolation)")
    rep = sub.add_parser("report", help="print Table 1 and write the paper-style report folder (tables, figures)")
    rep.add_argument("source", help="a results directory, or a suite name / suite YAML (its runs under --results)")
    rep.add_argument("--format", choices=["md", "latex", "csv"], default="md", help="format of the printed table")
    rep.add_argument("--suite", default=None, help="with a results directory: only runs of this suite")
    rep.add_argument("--metric", choices=["probe", "knn"], default="probe")
    rep.add_argument("--out", default=None, help="write the table to this file instead of stdout")
    rep.add_argument("--results", action="append", default=None, metavar="DIR",
                     help="results directory holding a suite's runs (repeatable; default: results)")
    rep.add_argument("--reports-dir", default="reports", help="report folders go to REPORTS_DIR/<name>/")
    rep.add_argument("--no-files", action="store_true", help="only print the table; write no report folder")
    co = sub.add_parser("collect", help="all runs of one or more results directories as one table (Parquet + CSV)")
    co.add_argument("results_dirs", nargs="+", metavar="DIR")
    co.add_argument("--out", default="runs", help="output path without suffix: writes OUT.parquet and OUT.csv")
    cp = sub.add_parser("compare", help="new runs vs stored runs vs the paper; FLAGs unlike settings/partitions")
    cp.add_argument("--baseline", nargs="+", required=True, metavar="DIR", help="stored results directories")
    cp.add_argument("--new", nargs="+", required=True, metavar="DIR", help="results directories with the new runs")
    cp.add_argument("--format", choices=["md", "latex", "csv"], default="md")
    cp.add_argument("--out", default=None, help="write to this file instead of stdout")
    cp.add_argument("--strict", action="store_true", help="exit 1 when any compared cell is flagged")
    st = sub.add_parser("status", help="every run of a results directory: state, round, metrics, device, ETA")
    st.add_argument("results_dir")
    st.add_argument("--suite", default=None, help="only runs of this suite (its not-yet-started runs included)")
    ls = sub.add_parser("list", help="list registered methods, datasets, protocols, backbones or suites")
    ls.add_argument("kind", choices=["methods", "datasets", "protocols", "backbones", "suites"])
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
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UserError as e:
        msg = " ".join(str(e).split())
        print(f"fedx-bench: error: {msg}", file=sys.stderr)
        return 2
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
    if args.cmd in ("collect", "compare"):
        for d in args.results_dirs if args.cmd == "collect" else args.baseline + args.new:
            if not Path(d).is_dir():
                raise UserError(f"results directory not found: {d}")
    if args.cmd == "report":
        from .reports import build_report

        src = Path(args.source)
        if src.is_dir():
            text = api.report(src, args.format, args.suite, args.metric)
        else:  # a suite: its runs in the results directories
            roots = args.results or ["results"]
            text = api.report(roots[0], args.format, src.stem if src.suffix in (".yaml", ".yml") else args.source,
                              args.metric)
        _emit(text, args.out)
        if not args.no_files:
            res = build_report(args.source if not src.is_dir() else src, args.reports_dir, args.results)
            absent = "; ".join(f"{k} ({v})" for k, v in res.absent.items()) or "none"
            print(f"report folder: {res.index} ({len(res.files)} files); not produced: {absent}")
        return 0
    if args.cmd == "collect":
        from .reports import collect, export

        df = collect(args.results_dirs)
        print(f"{len(df)} runs -> " + ", ".join(str(f) for f in export(df, args.out)))
        return 0
    if args.cmd == "compare":
        from .reports import compare

        cmp = compare(args.baseline, args.new)
        _emit(cmp.render(args.format), args.out)
        return 1 if (args.strict and len(cmp.flagged)) else 0
    if args.cmd == "status":
        from .status import render_status, status_rows

        if not Path(args.results_dir).is_dir():
            raise UserError(f"results directory not found: {args.results_dir}")
        print(render_status(status_rows(args.results_dir, args.suite)), end="")
        return 0
    if args.cmd == "run":
        mode = "quiet" if args.quiet else ("log" if args.log else "auto")
        res = api.run_suite(_resolve_suite_path(args.suite), args.results, args.data_root, args.device, mode,
                            _parse_set(args.set), jobs=args.jobs, devices=args.devices,
                            runs_per_device=args.runs_per_device, backend=args.backend,
                            scheduler_address=args.scheduler_address, ray_address=args.address,
                            retries=args.retries, threads_per_run=args.threads_per_run,
                            in_process=args.in_process)
        c = res.counts
        print(api.summary_table(args.results, res.name))
        other = "".join(f", {n} {k}" for k, n in c.items() if k not in ("done", "skipped", "failed") and n)
        print(f"suite {res.name}: {c.get('done', 0)} done, {c.get('skipped', 0)} skipped, {c.get('failed', 0)} failed"
              f"{other} in {res.wall_seconds:.0f} s; results in {res.results_dir}/runs/")
        for o in res.outcomes:
            if o.state == "failed":
                tb = f"{res.results_dir}/runs/{o.run_id}/traceback.txt"
                see = f"; see {tb}" if Path(tb).exists() else ""  # a full or read-only disk may have none
                print(f"  FAILED {o.label} ({o.run_id}): {o.error}{see}")
        return 0 if res.ok else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())

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
    rep = sub.add_parser("report", help="render the Table-1-style table from stored results")
    rep.add_argument("results_dir")
    rep.add_argument("--format", choices=["md", "latex", "csv"], default="md")
    rep.add_argument("--suite", default=None, help="only runs of this suite")
    rep.add_argument("--metric", choices=["probe", "knn"], default="probe")
    rep.add_argument("--out", default=None, help="write to this file instead of stdout")
    ls = sub.add_parser("list", help="list registered methods, datasets, protocols, backbones or suites")
    ls.add_argument("kind", choices=["methods", "datasets", "protocols", "backbones", "suites"])
    return p


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


def _dispatch(args: argparse.Namespace) -> int:
    from . import api

    if args.cmd == "list":
        for name, desc in api.list_registry(args.kind):
            print(f"{name:32s} {desc}".rstrip())
        return 0
    if args.cmd == "report":
        if not Path(args.results_dir).is_dir():
            raise UserError(f"results directory not found: {args.results_dir}")
        text = api.report(args.results_dir, args.format, args.suite, args.metric)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text)
            print(f"wrote {args.out}")
        else:
            print(text, end="")
        return 0
    if args.cmd == "run":
        mode = "quiet" if args.quiet else ("log" if args.log else "auto")
        res = api.run_suite(_resolve_suite_path(args.suite), args.results, args.data_root, args.device, mode,
                            _parse_set(args.set))
        c = res.counts
        print(api.summary_table(args.results, res.name))
        print(f"suite {res.name}: {c.get('done', 0)} done, {c.get('skipped', 0)} skipped, {c.get('failed', 0)} failed "
              f"in {res.wall_seconds:.0f} s; results in {res.results_dir}/runs/")
        for o in res.outcomes:
            if o.state == "failed":
                tb = f"{res.results_dir}/runs/{o.run_id}/traceback.txt"
                print(f"  FAILED {o.label} ({o.run_id}): {o.error}; see {tb}")
        return 0 if res.ok else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())

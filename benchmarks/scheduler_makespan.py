"""Scheduler makespan: N short real runs on K workers vs the ideal (sum of single-run times / K).

Not a test. Phase 1 runs the N runs one after another in this process (torch already imported, the same
CPU threads per run as phase 2) and records each run's wall time; phase 2 runs the same N runs (fresh results
directory) with ``jobs=K``, each in its own process, and measures the suite's wall time (the makespan, which
therefore includes process start-up, torch import and dataset loading per run). Target: ratio <= 1.10 for
N >= 4K. On a shared machine, report the load (``uptime``) with the numbers.

    python3 benchmarks/scheduler_makespan.py --workers 2 --runs 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from fedx_bench import api


def suite_doc(n: int, rounds: int, local_epochs: int, width: int) -> dict:
    """N distinct tiny runs (seeds 0..N-1) of the synthetic dataset."""
    return {
        "name": "makespan",
        "base": {
            "dataset": "synthetic",
            "model": {"backbone": "cnn4", "width": width},
            "federation": {"clients": 2, "rounds": rounds, "local_epochs": local_epochs, "min_size": 2},
            "optim": {"batch_size": 32},
            "eval": {"probe_epochs": 5, "knn_k": 5, "interval": rounds},
        },
        "grid": {"seed": list(range(n))},
    }


def load() -> str:
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", "-k", type=int, default=2)
    ap.add_argument("--runs", "-n", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--local-epochs", type=int, default=5)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    k, n = args.workers, args.runs
    threads = max(1, (os.cpu_count() or 1) // k)
    with tempfile.TemporaryDirectory(prefix="fedx-makespan-") as tmp:
        suite = Path(tmp) / "makespan.yaml"
        suite.write_text(yaml.safe_dump(suite_doc(n, args.rounds, args.local_epochs, args.width)))
        print(f"{n} runs, {k} workers, {threads} CPU thread(s) per run, {os.cpu_count()} cores; {load()}")

        torch.set_num_threads(threads)
        seq = api.run_suite(suite, Path(tmp) / "seq", progress="quiet", jobs=1)
        singles = [o.wall_seconds for o in seq.outcomes]
        assert all(o.state == "done" for o in seq.outcomes), [o.error for o in seq.outcomes]
        print(f"phase 1 (sequential, in process): single-run mean {statistics.mean(singles):.1f} s "
              f"(min {min(singles):.1f}, max {max(singles):.1f}), total {seq.wall_seconds:.1f} s; {load()}")

        t0 = time.perf_counter()
        par = api.run_suite(suite, Path(tmp) / "par", progress="quiet", jobs=k, threads_per_run=threads)
        makespan = time.perf_counter() - t0
        assert all(o.state == "done" for o in par.outcomes), [o.error for o in par.outcomes]
        seq_in, par_in = (train_eval_seconds(Path(tmp) / d, seq.outcomes) for d in ("seq", "par"))
        ideal = sum(singles) / k
        contention = statistics.mean(par_in) / statistics.mean(seq_in)
        overhead = makespan - sum(par_in) / k  # per worker: not training or evaluating
        print(f"phase 2 ({k} workers, one process per run): makespan {makespan:.1f} s; {load()}")
        print(f"ideal (sum of single-run times / K) {ideal:.1f} s; makespan / ideal = {makespan / ideal:.3f}")
        print(f"  of which CPU contention: a run's training+eval took {statistics.mean(par_in):.1f} s with {k} at once "
              f"vs {statistics.mean(seq_in):.1f} s alone (x{contention:.2f}); outside training+eval (process "
              f"start-up, setup, dispatch) {overhead:.1f} s per worker = {overhead / makespan:.0%} of the makespan")
        adjusted = makespan / (sum(par_in) / k)
        print(f"makespan / (sum of the runs' training+eval times while {k} ran at once / K) = {adjusted:.3f} "
              "(the scheduler's own cost, CPU contention from other tenants factored out)")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "runs": n, "workers": k, "threads_per_run": threads, "single_run_seconds": singles,
                "sequential_total_seconds": seq.wall_seconds, "makespan_seconds": makespan, "ideal_seconds": ideal,
                "ratio": makespan / ideal, "train_eval_seconds_alone": seq_in, "train_eval_seconds_parallel": par_in,
                "contention": contention, "overhead_seconds_per_worker": overhead, "adjusted_ratio": adjusted,
                "load_after": load(),
            }, indent=2))


def train_eval_seconds(root: Path, outcomes: list) -> list[float]:
    """Each run's own training+evaluation time (eval.json), without process start-up and setup."""
    return [json.loads((root / "runs" / o.run_id / "eval.json").read_text())["wall_seconds"] for o in outcomes]


if __name__ == "__main__":
    main()

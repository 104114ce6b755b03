"""The Python API a notebook calls; the CLI is a thin layer over these functions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunConfig, SuiteConfig, load_suite
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
) -> SuiteResult:
    """Run every run of a suite (skipping finished ones, resuming unfinished ones); never raises for a
    failed run: failures are recorded in the store and counted in the result."""
    cfg = suite if isinstance(suite, SuiteConfig) else load_suite(suite, overrides)
    for r in cfg.runs:
        if device is not None:
            r.device = device
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
    prog.suite_start(cfg.name, len(cfg.runs))
    try:
        for run_cfg in cfg.runs:
            res.outcomes.append(execute_run(run_cfg, results_dir, cache, prog, suite=cfg.name))
            prog.suite_advance()
    finally:
        prog.suite_end()
    res.wall_seconds = time.perf_counter() - t0
    return res


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

"""Is a stored run still what the current code computes? ``stale_runs`` classifies a suite's finished runs by the
code that made them (``run`` reports them, ``--rerun-stale`` retrains them); ``verify`` re-runs stored runs on CPU
and compares every stored metric bit for bit (``fedx-bench verify``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .progress import Progress
from .runner import DatasetCache, execute_run
from .store import RunStore, read_json

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
            return (f"{self.run_id} {self.label}: differs, largest metric difference {self.max_diff:.6g} ({self.where})"
                    + (f"; {self.detail}" if self.detail else ""))
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
    from .environment import cpu_device
    from .provenance import cpu_mismatch

    why = cpu_mismatch(env, cpu_device())
    note = "; ".join(x for x in (note, why) if x)
    return VerifyOutcome(rid, label, "differs", worst, where, note)

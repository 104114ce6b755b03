"""Does a run reproduce the repository's stored reference run of the same config?

The stored store (the committed top-level ``results/``) and the user's own runs (``results/local/`` by default)
hold runs under the same run id (the config hash). After a suite, every run that has a stored twin is compared
value by value: every number of ``eval.json`` and of every ``metrics.jsonl`` round, timings and memory excluded
(they depend on the machine, not the result). The answer is one line: exactly, or by how much.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .provenance import cpu_mismatch
from .store import read_json_object

# Keys whose values describe the machine or the clock, not the result.
_MACHINE = ("seconds", "peak_", "_mb", "wall", "updated", "started", "host", "pid", "device")


def _machine_key(key: str) -> bool:
    return any(m in key for m in _MACHINE)


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not _machine_key(str(k)):
                _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = obj


def run_values(run_path: Path) -> dict[str, Any] | None:
    """Every result value of a finished run (``eval.json`` and ``metrics.jsonl`` by round), or None if unreadable."""
    try:
        ev = json.loads((run_path / "eval.json").read_text())
        rounds = [json.loads(line) for line in (run_path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    out: dict[str, Any] = {}
    _flatten(ev, "eval", out)
    for rec in rounds:
        if isinstance(rec, dict):
            _flatten(rec, f"round{rec.get('round', '?')}", out)
    return out


@dataclass
class RunDiff:
    run_id: str
    label: str
    compared: int
    differing: int
    max_abs: float  # largest |ours - stored| over numeric values (inf if a key is missing on one side)
    worst_key: str | None


@dataclass
class ReferenceCheck:
    reference_dir: str
    runs: list[RunDiff] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # labels with no finished stored twin
    cpu_note: str | None = None  # why a CPU difference may be legitimate (another or an unrecorded CPU type)

    def line(self) -> str:
        """One line: whether the runs reproduce the stored reference runs exactly, or by how much they differ."""
        ref = f"{self.reference_dir}/runs/"
        if not self.runs:
            return (f"reference: no stored reference run of these configs under {ref} (nothing to compare)")
        same = [d for d in self.runs if d.differing == 0]
        vals = sum(d.compared for d in self.runs)
        extra = f"; {len(self.unavailable)} run(s) without a stored twin" if self.unavailable else ""
        if len(same) == len(self.runs):
            return (f"reference: reproduces the stored reference runs exactly: {len(same)}/{len(self.runs)} runs "
                    f"identical to {ref} in all {vals} values of eval.json and metrics.jsonl (timings excluded)"
                    f"{extra}")
        worst = max((d for d in self.runs if d.differing), key=lambda d: d.max_abs)
        ndiff = sum(d.differing for d in self.runs)
        by = "a value missing on one side" if math.isinf(worst.max_abs) else f"{worst.max_abs:.4g}"
        return (f"reference: differs from the stored reference runs in {ref}: {len(same)}/{len(self.runs)} runs "
                f"identical, {ndiff} of {vals} values differ; largest difference {by} ({worst.worst_key}, "
                f"{worst.label}){extra}" + (f"; {self.cpu_note}" if self.cpu_note else ""))


def _diff(ours: dict[str, Any], stored: dict[str, Any]) -> tuple[int, float, str | None]:
    n, worst, worst_key = 0, 0.0, None
    for k in sorted(set(ours) | set(stored)):
        a, b = ours.get(k, KeyError), stored.get(k, KeyError)
        if a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)):
            continue
        n += 1
        num = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        d = abs(float(a) - float(b)) if num else math.inf  # type: ignore[arg-type]
        if d > worst or worst_key is None:
            worst, worst_key = d, k
    return n, worst, worst_key


def compare_to_reference(runs: list[Any], results_dir: str | Path, reference_dir: str | Path) -> ReferenceCheck:
    """Compare every finished run of ``runs`` (RunConfigs) in ``results_dir`` with the same run id in
    ``reference_dir``."""
    chk = ReferenceCheck(str(reference_dir).rstrip("/"))
    for r in runs:
        ours = run_values(Path(results_dir) / "runs" / r.run_id)
        stored = run_values(Path(reference_dir) / "runs" / r.run_id)
        if ours is None:
            continue
        if stored is None:
            chk.unavailable.append(r.label)
            continue
        n, worst, key = _diff(ours, stored)
        chk.runs.append(RunDiff(r.run_id, r.label, len(set(ours) | set(stored)), n, worst, key))
        if n and chk.cpu_note is None:
            dev = read_json_object(Path(results_dir) / "runs" / r.run_id / "env.json").get("device") or {}
            chk.cpu_note = cpu_mismatch(read_json_object(Path(reference_dir) / "runs" / r.run_id / "env.json"), dev)
    return chk


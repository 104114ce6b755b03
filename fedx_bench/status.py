"""``fedx-bench status``: where every run of a results directory stands, read from the store only.

Reads ``status.json`` and ``spec.json`` of each run (and ``suites/<name>.json`` for the runs of a suite that
have not started yet); never imports torch, so it is instant and safe to call while a suite is running —
every file it reads is written atomically.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .procutil import pid_alive
from .progress import fmt_secs
from .store import read_json_object


@dataclass
class StatusRow:
    """One run as ``status`` shows it."""

    run_id: str
    label: str
    state: str  # pending | running | done | failed | interrupted | ...
    round: int | None
    rounds: int | None
    probe: float | None  # last evaluated linear-probe top-1
    knn: float | None
    loss: float | None
    device: str | None
    elapsed_seconds: float | None
    eta_seconds: float | None
    updated_seconds_ago: float | None
    attempts: int
    error: str | None
    store: str | None = None  # stored | local, when several results directories are shown together


def _age(updated: str | None, now: float) -> float | None:
    if not updated or not isinstance(updated, str):
        return None
    try:
        return max(0.0, now - datetime.strptime(updated, "%Y-%m-%dT%H:%M:%S%z").timestamp())
    except ValueError:
        return None


def _row(run_id: str, label: str, st: dict[str, Any], spec: dict[str, Any], now: float) -> StatusRow:
    state = st.get("state", "pending")
    # A "running" run whose process is gone was killed (kill -9, power loss): say so instead of "running".
    if state == "running" and isinstance(st.get("pid"), int) and st.get("host") == socket.gethostname() \
            and not pid_alive(int(st["pid"])):
        state = "interrupted"
    lm = _d(st.get("last_metrics"))
    rounds = st.get("rounds") or _d(_d(spec.get("config")).get("federation")).get("rounds")
    elapsed = st.get("wall_seconds") if state == "done" else st.get("elapsed_seconds")
    eta = None if state in ("done", "failed", "interrupted") else st.get("eta_seconds")
    err = st.get("error") if state in ("failed", "interrupted") else None
    attempts = st.get("attempts")
    return StatusRow(run_id, label, str(state), _n(st.get("round")), _n(rounds), _n(lm.get("linear_probe_top1")),
                     _n(lm.get("knn_top1")), _n(lm.get("loss")), st.get("device"), _n(elapsed), _n(eta),
                     _age(st.get("updated"), now), len(attempts) if isinstance(attempts, list) else 0,
                     None if err is None else str(err))


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _n(x: Any) -> Any:
    """A number from a status file, or None (a hand-edited or foreign file never breaks the table)."""
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def status_rows(results_dir: str | Path, suite: str | None = None, now: float | None = None) -> list[StatusRow]:
    """Every run under ``results_dir`` (or every run of ``suite``, in suite order, including pending ones)."""
    root = Path(results_dir)
    now = time.time() if now is None else now
    runs = root / "runs"
    if suite is not None:
        rec = read_json_object(root / "suites" / f"{suite}.json")
        if not rec:
            from .errors import UserError

            known = ", ".join(sorted(p.stem for p in (root / "suites").glob("*.json"))) or "none"
            raise UserError(f"no suite {suite!r} under {root} (known: {known})")
        ids = list(rec.get("run_ids", []))
        labels = dict(rec.get("labels", {}))
    else:
        ids = sorted(p.name for p in runs.iterdir() if (p / "spec.json").exists()) if runs.is_dir() else []
        labels = {}
        for rec_path in sorted((root / "suites").glob("*.json")):  # suite labels show the swept values
            labels.update(read_json_object(rec_path).get("labels") or {})
    rows = []
    for run_id in ids:
        spec = read_json_object(runs / run_id / "spec.json")
        st = read_json_object(runs / run_id / "status.json")
        rows.append(_row(run_id, str(labels.get(run_id) or spec.get("label") or run_id), st, spec, now))
    if suite is None:
        rows.sort(key=lambda r: (r.label, r.run_id))
    return rows


def human_age(s: float | None) -> str:
    """``12 s``, ``4 min``, ``3 h 5 min``, ``6 d 8 h``: the two largest units, for "updated ... ago"."""
    if s is None:
        return "-"
    s = int(max(0, s))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m} min"
    if m:
        return f"{m} min"
    return f"{sec} s"


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render_status(rows: list[StatusRow]) -> str:
    """A plain fixed-width table (one line per run, greppable) plus a totals line and failure reasons."""
    if not rows:
        return "no runs\n"
    head = ["run", "label", "state", "round", "probe", "knn", "loss", "device", "elapsed", "eta", "updated"]
    stores = any(r.store for r in rows)
    if stores:
        head.insert(0, "store")
    body = []
    for r in rows:
        rnd = f"{r.round if r.round is not None else 0}/{r.rounds if r.rounds is not None else '?'}"
        state = r.state + (f" (x{r.attempts})" if r.attempts > 1 else "")
        ago = "-" if r.updated_seconds_ago is None else f"{human_age(r.updated_seconds_ago)} ago"
        line = [r.run_id, r.label, state, rnd, _num(r.probe, ".2f"), _num(r.knn, ".2f"), _num(r.loss, ".4g"),
                r.device or "-", fmt_secs(r.elapsed_seconds, "-"), fmt_secs(r.eta_seconds, "-"), ago]
        body.append([r.store or "-", *line] if stores else line)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *body]]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    lines.append(f"{len(rows)} runs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for r in rows:
        if r.error:
            lines.append(f"  {r.state.upper()} {r.label} ({r.run_id}): {r.error}")
    return "\n".join(lines) + "\n"

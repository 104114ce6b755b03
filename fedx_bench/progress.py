"""Progress reporting: tqdm bars on a terminal, one plain line per event in logs, nothing when quiet.

``Progress`` shows a suite run in this process; ``ParallelProgress`` shows runs that work in other processes, read
from their ``status.json``. ``fmt_secs`` is the one duration format of every progress line and of ``status``.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .procutil import locked_elsewhere, pid_alive
from .store import read_json

if TYPE_CHECKING:
    from .config import RunConfig
    from .runner import RunOutcome


def fmt_secs(s: float | None, missing: str = "?") -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on; ``missing`` when the duration is unknown."""
    if s is None:
        return missing
    s = int(max(0, s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """Suite- and run-level progress. ``mode``: auto (bars on a TTY, lines otherwise), bar, log, quiet."""

    def __init__(self, mode: str = "auto", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "log"
        self.mode = mode
        self._suite_bar: Any = None
        self._run_bar: Any = None
        self._run_label = ""
        self._run_start: float | None = None  # None: no run started (a run can fail before it starts)
        self._total_rounds = 0

    def log(self, msg: str) -> None:
        if self.mode == "quiet":
            return
        if self.mode == "bar":
            from tqdm import tqdm

            tqdm.write(msg, file=self.stream)
        else:  # one format everywhere: "YYYY-MM-DD HH:MM:SS message"
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", file=self.stream, flush=True)

    def suite_start(self, name: str, total: int) -> None:
        if self.mode == "bar":
            from tqdm import tqdm

            self._suite_bar = tqdm(total=total, desc=f"suite {name}", unit="run", position=0, file=self.stream)
        else:
            self.log(f"suite {name}: {total} runs")

    def suite_advance(self) -> None:
        if self._suite_bar is not None:
            self._suite_bar.update(1)

    def suite_end(self) -> None:
        if self._suite_bar is not None:
            self._suite_bar.close()
            self._suite_bar = None

    def run_start(self, label: str, total_rounds: int, start_round: int = 0) -> None:
        self._run_label = label
        self._run_start = time.perf_counter()
        self._total_rounds = total_rounds
        self._start_round = start_round
        if self.mode == "bar":
            from tqdm import tqdm

            self._run_bar = tqdm(
                total=total_rounds, initial=start_round, desc=label, unit="round", position=1, leave=False,
                file=self.stream,
            )
        else:
            resumed = f" (resuming after round {start_round})" if start_round else ""
            self.log(f"[{label}] start: {total_rounds} rounds{resumed}")

    def within_round(self, info: dict[str, Any]) -> None:
        """Throttled progress inside a long round (paper-scale rounds take hours on a CPU)."""
        msg = (f"round {info['round']}/{self._total_rounds} client {info['client']}/{info['clients']} "
               f"step {info['step']}/{info['steps']} loss={info['loss']:.4g}")
        if self._run_bar is not None:
            self._run_bar.set_postfix_str(msg)
        elif self.mode != "quiet":
            self.log(f"[{self._run_label}] {msg}")

    def round_end(self, round_idx: int, metrics: dict[str, Any]) -> None:
        # the same names and order as the parallel view's lines (probe, knn, loss)
        named = {{"linear_probe": "probe", "linear_probe_top1": "probe", "knn_top1": "knn"}.get(k, k): v
                 for k, v in metrics.items() if isinstance(v, float)}
        order = {"probe": 0, "knn": 1, "loss": 2}
        shown = dict(sorted(named.items(), key=lambda kv: order.get(kv[0], 3)))
        if self._run_bar is not None:
            self._run_bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()})
            self._run_bar.update(1)
            return
        done = round_idx - self._start_round
        elapsed = time.perf_counter() - (self._run_start or time.perf_counter())
        eta = elapsed / max(done, 1) * (self._total_rounds - round_idx)
        parts = " ".join(f"{k}={v:.4g}" for k, v in shown.items())
        self.log(f"[{self._run_label}] round {round_idx}/{self._total_rounds} {parts} "
                 f"elapsed={fmt_secs(elapsed)} eta={fmt_secs(eta)}")

    def run_end(self, state: str, summary: str = "", label: str | None = None) -> None:
        """End of a run; ``label`` names it when it may have failed before ``run_start`` (then no time is shown:
        there is no start to measure from)."""
        if self._run_bar is not None:
            self._run_bar.close()
            self._run_bar = None
        started = self._run_start is not None and (label is None or label == self._run_label)
        label = label or self._run_label
        took = f"in {fmt_secs(time.perf_counter() - self._run_start)}" if started and self._run_start else \
            "before training started:"
        self.log(f"[{label}] {state} {took} {summary}".rstrip())
        self._run_start = None


def _short(metric: str) -> str:
    """A metric's name in the parallel view's lines: ``linear_probe_top1`` → ``probe``."""
    return metric.replace("_top1", "").replace("linear_", "")


class ParallelProgress:
    """Suite bar + one live line per active run, from the runs' ``status.json`` (written atomically by the
    runner every round and every ~30 s within one). In log mode: one plain line per change."""

    def __init__(self, prog: Progress, results_dir: Path, suite: str, runs: list[RunConfig]) -> None:
        self.prog = prog
        self.results_dir = results_dir
        self.suite = suite
        self.total = len(runs)
        self.labels = {r.run_id: r.label for r in runs}
        self.rounds = {r.run_id: r.federation.rounds for r in runs}
        self.finished: dict[str, str] = {}
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._warned: dict[str, int] = {}  # run id -> warnings of its current attempt already printed
        self._elsewhere: set[str] = set()  # runs announced as running in another invocation
        self.invocation: str | None = None  # our run processes stamp status.json["invocation"] with this
        self._bars: dict[str, Any] = {}
        self._free_pos: list[int] = []
        self._next_pos = 1
        self._t0 = time.perf_counter()

    def start(self) -> None:
        self.prog.suite_start(self.suite, self.total)

    def _status(self, run_id: str) -> dict[str, Any]:
        return read_json(self.results_dir / "runs" / run_id / "status.json", {}) or {}

    def elsewhere(self, run_id: str) -> None:
        """A run another live invocation holds: say so once; it is waited for, not failed."""
        if run_id in self._elsewhere or run_id in self.finished:
            return
        self._elsewhere.add(run_id)
        st = self._status(run_id)
        who = f" (pid {st.get('pid')} on {st.get('host')})" if st.get("pid") else ""
        self.prog.log(f"[{self.labels.get(run_id, run_id)}] running elsewhere{who}; waiting for it")

    def _held_elsewhere(self, st: dict[str, Any], run_id: str) -> bool:
        """Another invocation's live run process works on it (its pid alive, the lock held)."""
        if st.get("state") != "running" or not st.get("pid"):
            return False
        if st.get("host") == socket.gethostname() and not pid_alive(int(st["pid"])):
            return False
        return locked_elsewhere(self.results_dir / "runs" / run_id)

    def _warnings(self, run_id: str, st: dict[str, Any]) -> None:
        """A run's new warnings: printed even with --quiet (they are not progress)."""
        ws = st.get("warnings") or []
        key = f"{run_id}:{st.get('attempt')}"
        for w in ws[self._warned.get(key, 0):]:
            line = f"[{self.labels.get(run_id, run_id)}] warning: {w}"
            if self.prog.mode == "quiet":
                print(f"fedx-bench: {line}", file=sys.stderr, flush=True)
            else:
                self.prog.log(line)
        self._warned[key] = len(ws)

    def poll(self, active: Sequence[str]) -> None:
        for run_id in active:
            if run_id in self.finished:
                continue
            st = self._status(run_id)
            if self.invocation is not None and st.get("invocation") != self.invocation:
                if run_id not in self._elsewhere and self._held_elsewhere(st, run_id):
                    self.elsewhere(run_id)
                continue  # not claimed by our run process: what is there is another invocation's, not ours to show
            self._warnings(run_id, st)
            if st.get("state") != "running" or st.get("start_round") is None:
                continue  # start_round is set once the run has loaded its checkpoint: then we know where it is
            pr = st.get("progress") or {}
            key = (st.get("attempt"), st.get("round"), json.dumps(pr, sort_keys=True, default=str))
            if self._seen.get(run_id) == key:
                continue
            first = run_id not in self._seen or self._seen[run_id][0] != key[0]  # a (re)start
            self._seen[run_id] = key
            self._show(run_id, st, first)

    def _show(self, run_id: str, st: dict[str, Any], first: bool) -> None:
        label, rounds = self.labels[run_id], self.rounds[run_id]
        rnd = int(st.get("round") or 0)
        start = int(st.get("start_round") or 0)
        lm = st.get("last_metrics") or {}
        pr = st.get("progress") or {}
        if self.prog.mode == "bar":
            self._bar_update(run_id, label, rounds, rnd, lm if rnd > start else {}, pr, st.get("eta_seconds"))
            return
        if first:
            resumed = f" (resuming after round {start})" if start else ""
            att = f", attempt {st['attempt']}" if (st.get("attempt") or 1) > 1 else ""
            self.prog.log(f"[{label}] start on {st.get('device', '?')}{resumed}{att}")
        if pr.get("step") is not None:
            self.prog.log(f"[{label}] round {pr.get('round')}/{rounds} client {pr.get('client')}/{pr.get('clients')} "
                          f"step {pr.get('step')}/{pr.get('steps')} loss={pr.get('loss', float('nan')):.4g}")
        elif pr:  # another phase of the run (e.g. a long evaluation)
            self.prog.log(f"[{label}] " + " ".join(f"{k}={v}" for k, v in sorted(pr.items())))
        elif rnd > start and st.get("elapsed_seconds") is not None:
            # only rounds this attempt trained: never the previous attempt's last line again after a resume
            parts = " ".join(f"{_short(k)}={v:.4g}" for k, v in lm.items() if isinstance(v, (int, float)))
            self.prog.log(f"[{label}] round {rnd}/{rounds} {parts} elapsed={fmt_secs(st.get('elapsed_seconds'))} "
                          f"eta={fmt_secs(st.get('eta_seconds'))}")

    def _bar_update(self, run_id: str, label: str, rounds: int, rnd: int, lm: dict[str, Any],
                    pr: dict[str, Any], eta: float | None) -> None:
        from tqdm import tqdm

        bar = self._bars.get(run_id)
        if bar is None:
            pos = self._free_pos.pop(0) if self._free_pos else self._next_pos
            self._next_pos = max(self._next_pos, pos + 1)
            bar = tqdm(total=rounds, initial=rnd, desc=label, unit="round", position=pos, leave=False,
                       file=self.prog.stream)
            bar.fedx_pos = pos  # type: ignore[attr-defined]
            self._bars[run_id] = bar
        bar.n = rnd
        post = {_short(k): f"{v:.3g}" for k, v in lm.items() if isinstance(v, (int, float))}
        if eta is not None:
            post["eta"] = fmt_secs(eta)
        if pr.get("step") is not None:
            post["step"] = f"{pr.get('client')}/{pr.get('clients')}:{pr.get('step')}/{pr.get('steps')}"
        elif pr:
            post.update({k: str(v) for k, v in pr.items()})
        bar.set_postfix(post, refresh=False)
        bar.refresh()

    def finish(self, outcome: RunOutcome, device: str | None = None) -> None:
        self.finished[outcome.run_id] = outcome.state
        bar = self._bars.pop(outcome.run_id, None)
        if bar is not None:
            self._free_pos.append(bar.fedx_pos)
            self._free_pos.sort()
            bar.close()
        label = self.labels.get(outcome.run_id, outcome.run_id)
        if outcome.state != "skipped" and self.prog.mode != "bar" and outcome.run_id not in self._seen:
            # a short run can start and end between two polls of its status: still say that it started
            self._seen[outcome.run_id] = (None, None, "")
            self.prog.log(f"[{label}] start on {device or '?'}")
        st = self._status(outcome.run_id)
        if outcome.state not in ("skipped", "interrupted") and st.get("invocation") == self.invocation:
            self._warnings(outcome.run_id, st)  # warnings of its last moments (e.g. a checkpoint fallback)
        note = getattr(outcome, "note", None)
        if note:
            self.prog.log(f"[{label}] {note}")
        elif outcome.state != "skipped":
            what = "done" if outcome.state == "done" else f"{outcome.state.upper()}: {outcome.error}"
            on = f" on {device}" if device else ""
            self.prog.log(f"[{label}] {what} in {fmt_secs(outcome.wall_seconds)}{on}")
        self.prog.suite_advance()
        if self.prog.mode != "bar":
            c: dict[str, int] = {}
            for s in self.finished.values():
                c[s] = c.get(s, 0) + 1
            counts = ", ".join(f"{v} {k}" for k, v in sorted(c.items()))
            self.prog.log(f"suite {self.suite}: {len(self.finished)}/{self.total} runs finished ({counts}) "
                          f"elapsed={fmt_secs(time.perf_counter() - self._t0)}")

    def end(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        self.prog.suite_end()

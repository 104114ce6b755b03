"""Progress reporting: tqdm bars on a terminal, one plain line per event in logs, nothing when quiet."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _fmt_secs(s: float) -> str:
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
                 f"elapsed={_fmt_secs(elapsed)} eta={_fmt_secs(eta)}")

    def run_end(self, state: str, summary: str = "", label: str | None = None) -> None:
        """End of a run; ``label`` names it when it may have failed before ``run_start`` (then no time is shown:
        there is no start to measure from)."""
        if self._run_bar is not None:
            self._run_bar.close()
            self._run_bar = None
        started = self._run_start is not None and (label is None or label == self._run_label)
        label = label or self._run_label
        took = f"in {_fmt_secs(time.perf_counter() - self._run_start)}" if started and self._run_start else \
            "before training started:"
        self.log(f"[{label}] {state} {took} {summary}".rstrip())
        self._run_start = None

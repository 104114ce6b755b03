"""Helpers shared by the benchmark scripts: timers, peak-memory probes, config loading, formatting.

The benchmarks are scripts, not part of the installed package, so they import this file as a sibling
module (``from common import ...``): run them as ``python3 benchmarks/<name>.py``.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import torch

from fedx_bench.config import RunConfig, load_suite

# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that a wall-clock reading covers it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ModelTimer:
    """Accumulates the time spent in the model part of local training: forward, backward, optimiser step.

    Why: the share of local-training wall time spent *outside* this part (data loading, augmentation,
    Python bookkeeping) is the overhead a fast path must remove, and it can only be read off if the
    model part is timed on its own. On CPU every op is synchronous, so ``perf_counter`` brackets are
    exact. On CUDA, bracketing each step with ``torch.cuda.synchronize`` would stop the host from
    queuing the next step while the device works, inflating exactly the overhead being measured; so
    CUDA events are recorded instead (no host sync) and read once in :meth:`total`. Each step's
    interval is then GPU-timeline time from the first model kernel to the last optimiser kernel.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self._seconds = 0.0
        self.cpu_seconds = 0.0
        self._open: Any = None
        self._open_cpu = 0.0
        self._events: list[tuple[Any, Any]] = []
        self.steps = 0

    def begin(self) -> None:
        """Mark the start of one step's model part."""
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self._open = ev
        else:
            self._open_cpu = time.process_time()
            self._open = time.perf_counter()

    def end(self) -> None:
        """Mark the end of the step opened by :meth:`begin` (ignored when none is open)."""
        if self._open is None:
            return
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self._events.append((self._open, ev))
        else:
            self._seconds += time.perf_counter() - self._open
            self.cpu_seconds += time.process_time() - self._open_cpu
        self._open = None
        self.steps += 1

    def total(self) -> float:
        """Seconds accumulated since construction or the last :meth:`reset` (syncs once on CUDA)."""
        if self._events:
            torch.cuda.synchronize(self.device)
            self._seconds += sum(a.elapsed_time(b) for a, b in self._events) / 1000.0
            self._events.clear()
        return self._seconds

    def reset(self) -> None:
        self.total()
        self._seconds = 0.0
        self.cpu_seconds = 0.0
        self.steps = 0
        self._open = None


@dataclasses.dataclass
class Phase:
    """Wall time, process CPU time and peak memory of one measured phase.

    CPU time (all threads of this process) is reported next to wall time because the benchmark
    machines are often shared: other processes stretch wall time but hardly change CPU time.
    """

    wall: float = 0.0
    cpu: float = 0.0
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float | None = None


class measure:  # noqa: N801 - used as a context manager, reads like a function
    """``with measure(device) as ph:`` fills ``ph`` (a :class:`Phase`) with the block's cost.

    Peak RSS is per phase where the kernel lets us reset the high-water mark (Linux
    ``/proc/self/clear_refs``); otherwise it is the process peak so far.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.phase = Phase()

    def __enter__(self) -> Phase:
        synchronize(self.device)
        reset_peak_rss()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._t = time.perf_counter()
        self._c = time.process_time()
        return self.phase

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.phase.wall = time.perf_counter() - self._t
        self.phase.cpu = time.process_time() - self._c
        self.phase.peak_rss_mb = peak_rss_mb()
        if self.device.type == "cuda":
            self.phase.peak_cuda_mb = torch.cuda.max_memory_allocated(self.device) / 2**20


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset this process's resident-set high-water mark (Linux >= 4.0); False where not possible.

    ``ru_maxrss`` cannot be reset, so per-phase peaks are read from ``VmHWM`` after this reset.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size in MiB: ``VmHWM`` (resettable) where available, else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return ru_maxrss_mb()


def ru_maxrss_mb() -> float:
    """The process's lifetime peak RSS from ``getrusage`` (KiB on Linux, bytes on macOS)."""
    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return v / 2**20 if platform.system() == "Darwin" else v / 1024.0


# --------------------------------------------------------------------------------------------------
# Configuration and environment
# --------------------------------------------------------------------------------------------------


def load_run(config: str | Path, run_index: int = 0) -> RunConfig:
    """One validated run of a suite YAML (``run_index`` counts the expanded runs in order)."""
    suite = load_suite(config)
    if not 0 <= run_index < len(suite.runs):
        raise SystemExit(f"{config}: --run-index {run_index} out of range (the suite has {len(suite.runs)} runs)")
    return suite.runs[run_index]


def load_average() -> str:
    """The 1/5/15-minute load averages, for reports from shared machines."""
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} logical cores visible, torch threads {torch.get_num_threads()})"


def ratio(slow: float, fast: float) -> float:
    """``slow / fast``, infinite when the fast side took no measurable time."""
    return slow / fast if fast > 0 else float("inf")


def pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else float("nan")

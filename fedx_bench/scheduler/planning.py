"""What a suite's fan-out will be: the options (``--jobs``, ``--devices``, backend ...), the device list, and the
local plan (concurrency and CPU threads per run). No run is started here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UserError

BACKENDS = ("loky", "dask", "ray")
DEFAULT_THREADS = 1  # intra-op CPU threads per run (same as fedx_bench.runner.DEFAULT_THREADS)


@dataclass
class SchedulerOptions:
    """How a suite is fanned out. ``jobs=None``: one run per device slot (or 1 on CPU without --devices)."""

    jobs: int | None = None
    devices: list[str] | None = None  # parsed: ["cuda:0", ...] or ["cpu"]; None = auto
    runs_per_device: int = 1
    backend: str = "loky"
    scheduler_address: str | None = None  # dask
    ray_address: str | None = None  # ray
    retries: int = 0
    threads_per_run: int | None = None  # CPU threads per run; None = 1 (DEFAULT_THREADS) in every mode
    poll_seconds: float = 1.0  # how often the parent reads the runs' status.json for progress
    in_process: bool = False  # run inside this process, one after another (explicit only: no crash isolation)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.jobs is not None and self.jobs < 1:
            raise UserError(f"--jobs must be >= 1, got {self.jobs}")
        if self.runs_per_device < 1:
            raise UserError(f"--runs-per-device must be >= 1, got {self.runs_per_device}")
        if self.retries < 0:
            raise UserError(f"--retries must be >= 0, got {self.retries}")
        if self.threads_per_run is not None and self.threads_per_run < 1:
            raise UserError(f"--threads-per-run must be >= 1, got {self.threads_per_run}")


def parse_devices(spec: str | Sequence[str] | None) -> list[str] | None:
    """``"0,1"`` → ``["cuda:0", "cuda:1"]``; ``"cpu"`` → ``["cpu"]``; ``cuda:N`` entries kept; None stays None."""
    if spec is None:
        return None
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if str(s).strip()]
    if not items:
        raise UserError("--devices is empty")
    out: list[str] = []
    for it in items:
        it = str(it)
        if it == "cpu":
            out.append("cpu")
        elif it.isdigit():
            out.append(f"cuda:{int(it)}")
        elif it == "cuda":
            out.append("cuda:0")
        elif it.startswith("cuda:") and it[5:].isdigit():
            out.append(it)
        else:
            raise UserError(f"--devices: {it!r} is not a GPU index, cuda:N or cpu")
    if "cpu" in out and len(set(out)) > 1:
        raise UserError("--devices: mix of cpu and GPUs; pass either GPU indices or cpu")
    if len(set(out)) != len(out):
        raise UserError("--devices lists a device twice; use --runs-per-device for several runs per GPU")
    return out


def local_devices(devices: list[str] | None, device: str | None = None) -> list[str]:
    """Devices a local (loky) suite uses: the given list, else ``--device``, else every GPU, else cpu."""
    import torch

    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if devices is not None:
        devs = devices
    elif device not in (None, "auto"):
        devs = parse_devices(device) or ["cpu"]
    else:
        devs = [f"cuda:{i}" for i in range(n_gpu)] or ["cpu"]
    missing = [d for d in devs if d != "cpu" and int(d.split(":")[1]) >= n_gpu]
    if missing:
        raise UserError(f"device {','.join(missing)} requested but this machine has {n_gpu} CUDA device(s) "
                        "(use --devices cpu)")
    return devs


@dataclass
class LocalPlan:
    """What the loky backend will do: ``in_process`` only when asked for explicitly."""

    devices: list[str]
    concurrency: int
    threads: int
    in_process: bool


def plan_local(opts: SchedulerOptions, device: str | None = None) -> LocalPlan:
    """Concurrency is ``--jobs`` (default: every device slot when ``--devices`` is given, else 1), capped by the
    GPU slots (devices x runs-per-device); CPU threads per run are ``threads_per_run`` (default 1), never derived
    from the concurrency, so the same run gives the same numbers under any ``--jobs``."""
    threads = opts.threads_per_run or DEFAULT_THREADS
    if opts.in_process:  # explicit: sequential, in this process, on the suite's own device
        return LocalPlan([device or "auto"] if opts.devices is None else opts.devices[:1], 1, threads, True)
    devs = local_devices(opts.devices, device)
    if devs == ["cpu"]:
        n = opts.jobs or 1
    else:
        slots = len(devs) * opts.runs_per_device
        n = min(opts.jobs, slots) if opts.jobs else (slots if opts.devices is not None else 1)
    return LocalPlan(devs, n, threads, False)

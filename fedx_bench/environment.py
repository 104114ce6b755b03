"""``env.json``: the package versions, code, device and host a run ran on. Lives with the code that runs models
(it asks torch about the device), so that the run store (``fedx_bench.store``) stays torch-free."""

from __future__ import annotations

import os
import platform
import socket
import time
from typing import Any

import numpy
import torch
import torchvision

from . import __version__
from .provenance import code_record, cpu_model, git_commit
from .store import STORE_VERSION


def cpu_device() -> dict[str, Any]:
    """The CPU type that decides which kernels torch runs (``provenance.CPU_KEYS``): model name and the vector
    ISA torch dispatches to (e.g. ``AVX512``, ``AVX2``)."""
    cap = getattr(torch.backends.cpu, "get_cpu_capability", None)
    return {"cpu_model": cpu_model(), "cpu_capability": cap() if cap is not None else None}


def environment_record(device: torch.device, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Package versions, git commit, device and host: stored as ``env.json`` with every run."""
    dev: dict[str, Any] = {"type": device.type, "name": "cpu", "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        dev["name"] = torch.cuda.get_device_name(device)
        dev["cuda"] = torch.version.cuda
        dev["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        dev["cudnn_deterministic"] = torch.backends.cudnn.deterministic
    else:
        dev["name"] = platform.processor() or platform.machine()
        dev["cpu_count"] = os.cpu_count()
        dev.update(cpu_device())
    rec = {
        "fedx_bench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "git_commit": git_commit(),
        "code": code_record(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": dev,
        "store_version": STORE_VERSION,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if extra:
        rec.update(extra)
    return rec

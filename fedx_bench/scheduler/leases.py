"""Device leases: which GPU a run process gets (a flock'ed slot pool per host, freed by the kernel when its holder
dies), the GPUs a worker sees, and the ownership stamp a run process writes into ``status.json``."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..procutil import fcntl  # None without it (Windows): leases are then assigned round-robin by task index


def _physical_gpu(device: str) -> str:
    """The physical id of ``cuda:<i>`` given ``CUDA_VISIBLE_DEVICES`` (what two processes must agree on)."""
    idx = int(device.split(":")[1]) if ":" in device else 0
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[idx] if idx < len(visible) else str(idx)


def worker_gpus() -> list[str]:
    """GPUs this worker process can use (auto device selection on a remote worker)."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        vis = [v for v in cvd.split(",") if v.strip() and v.strip() != "-1"]
        return [f"cuda:{i}" for i in range(len(vis))]
    try:
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    except Exception:  # noqa: BLE001 - no usable torch/CUDA: CPU
        return []


class DeviceLease:
    """A slot pool of ``per_device`` flock'ed files per GPU, shared by every process of one suite invocation
    on one host. ``acquire`` returns the device to use; the kernel frees a dead holder's slot."""

    def __init__(self, namespace: str, devices: list[str], per_device: int, index: int = 0) -> None:
        self.devices = devices
        self.per_device = per_device
        self.index = index  # task index: static round-robin without fcntl
        self.dir = Path(tempfile.gettempdir()) / "fedx-bench-leases" / namespace
        self._fd: int | None = None
        self.slot: str | None = None

    def acquire(self, abort: Callable[[], bool] = lambda: False, wait: float = 0.2) -> str | None:
        """Block until a slot is free (None if ``abort()`` turns true while waiting)."""
        if self.devices == ["cpu"]:
            return "cpu"
        if fcntl is None:  # pragma: no cover
            return self.devices[self.index % len(self.devices)]
        self.dir.mkdir(parents=True, exist_ok=True)
        while True:
            for k in range(self.per_device):  # slot-major: spread runs over GPUs before doubling up
                for dev in self.devices:
                    path = self.dir / f"gpu{_physical_gpu(dev)}-{k}.lock"
                    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        os.close(fd)
                        continue
                    self._fd, self.slot = fd, path.stem
                    return dev
            if abort():
                return None
            time.sleep(wait)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd, self.slot = None, None


def mark_owner(rd: Any, attempt: int, device: str | None = None, invocation: str | None = None) -> None:
    """Record which process works on a run (``status`` uses pid+host to tell a live run from a killed one); the
    per-attempt fields start empty, so nobody mistakes the previous attempt's for this one's."""
    fields: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "attempt": attempt, "error": None,
                              "warnings": [], "start_round": None, "progress": None, "invocation": invocation}
    if device is not None:
        fields["device"] = device
    rd.set_status("running", **fields)

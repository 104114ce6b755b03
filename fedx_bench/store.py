"""The run store: ``results/runs/<run_id>/`` — the contract between training and reporting.

Files per run: ``spec.json`` (resolved config, hash, protocol versions), ``env.json`` (provenance),
``partition.json``, ``metrics.jsonl`` (one line per evaluated/trained round), ``eval.json`` (Last/Best
summary), ``status.json`` (pending/running/done/failed, with traceback on failure) and
``checkpoint.pt`` while a run is unfinished. Every write is atomic (temp file + rename), so a crash
never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

STORE_VERSION = "v1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and ``os.replace``: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def git_commit(cwd: Path | None = None) -> str | None:
    """The current git commit of the fedx-bench checkout (None when not in a git tree)."""
    here = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
        commit = out.stdout.strip() or None
        if commit:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here, capture_output=True, text=True, timeout=5, check=False,
            ).stdout.strip()
            return commit + ("-dirty" if dirty else "")
        return None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_record(device: torch.device, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Package versions, git commit, device and host: stored as ``env.json`` with every run."""
    import numpy
    import torchvision

    from . import __version__

    dev: dict[str, Any] = {"type": device.type, "name": "cpu", "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        dev["name"] = torch.cuda.get_device_name(device)
        dev["cuda"] = torch.version.cuda
        dev["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        dev["cudnn_deterministic"] = torch.backends.cudnn.deterministic
    else:
        dev["name"] = platform.processor() or platform.machine()
        dev["cpu_count"] = os.cpu_count()
    rec = {
        "fedx_bench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "git_commit": git_commit(),
        "code": __import__("fedx_bench.provenance", fromlist=["code_record"]).code_record(),  # issue 10
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": dev,
        "store_version": STORE_VERSION,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if extra:
        rec.update(extra)
    return rec


class RunDir:
    """One run's folder and its files."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.run_id = run_id
        self.path = root / "runs" / run_id

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def status(self) -> dict[str, Any]:
        return read_json(self.file("status.json"), {"state": "pending"})

    def set_status(self, state: str, **fields: Any) -> None:
        rec = dict(self.status)
        rec.update(fields)
        rec["state"] = state
        rec["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_json(self.file("status.json"), rec)

    def is_done(self) -> bool:
        return self.status.get("state") == "done" and self.file("eval.json").exists()

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """Rewrite ``metrics.jsonl`` whole (atomic); it is small (one line per round)."""
        data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        atomic_write_bytes(self.file("metrics.jsonl"), data.encode())

    def read_metrics(self) -> list[dict[str, Any]]:
        p = self.file("metrics.jsonl")
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


class RunStore:
    """A results directory: ``runs/<id>/`` per run and ``suites/<name>.json`` per suite invocation."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def run(self, run_id: str) -> RunDir:
        return RunDir(self.root, run_id)

    def run_dirs(self) -> Iterator[RunDir]:
        base = self.root / "runs"
        if not base.is_dir():
            return
        for p in sorted(base.iterdir()):
            if p.is_dir() and (p / "spec.json").exists():
                yield RunDir(self.root, p.name)

    def write_suite(self, name: str, record: dict[str, Any]) -> Path:
        path = self.root / "suites" / f"{name}.json"
        atomic_write_json(path, record)
        return path

    def read_suite(self, name: str) -> dict[str, Any] | None:
        return read_json(self.root / "suites" / f"{name}.json")

    def suites(self) -> list[str]:
        d = self.root / "suites"
        return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def load_results(*roots: str | Path) -> list[dict[str, Any]]:
    """Flat records (spec + eval summary + status) for every run under the given results directories."""
    out = []
    for root in roots:
        for rd in RunStore(root).run_dirs():
            spec = read_json(rd.file("spec.json"), {})
            out.append(
                {
                    "run_id": rd.run_id,
                    "results_dir": str(root),
                    "spec": spec,
                    "eval": read_json(rd.file("eval.json")),
                    "status": rd.status,
                    "env": read_json(rd.file("env.json"), {}),
                }
            )
    return out

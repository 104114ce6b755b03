"""Who holds a run, on this host: whether a pid is alive, and the exclusive per-run lock ``runs/<id>/.lock``.

One home for the process facts the scheduler (supervisors, the parallel progress view) and ``fedx-bench status``
share. Imports nothing of the package and no torch, so ``status`` and the supervisors stay light.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:  # POSIX only; without it a run lock is always granted and device leases fall back to round-robin
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


def pid_alive(pid: int) -> bool:
    """A process with this pid exists on this host and is not a zombie (a killed ``fedx-bench run`` its shell has
    not reaped yet is dead for our purposes). Unknown (no permission to signal it): alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    try:  # Linux: a killed-but-unreaped process is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@contextlib.contextmanager
def run_lock(run_path: Path) -> Iterator[bool]:
    """Exclusive lock on ``runs/<id>/.lock`` for the life of the holder process; yields False if taken. The kernel
    drops it when the holder dies, so a killed run never blocks its resume."""
    if fcntl is None:  # pragma: no cover
        yield True
        return
    run_path.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_path / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def locked_elsewhere(run_path: Path) -> bool:
    """True while another live process holds the run's lock (a look only: the lock is released at once)."""
    if fcntl is None or not (run_path / LOCK_FILE).exists():  # pragma: no cover - no fcntl
        return False
    try:
        fd = os.open(run_path / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False

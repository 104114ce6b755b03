"""Round checkpoints of a run (``checkpoint.pt`` and the previous ``checkpoint.prev.pt``): written atomically with
``torch.save`` and loaded with ``weights_only=True``. Lives with the code that runs models, so that the run store
(``fedx_bench.store``) stays torch-free."""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .store import CHECKPOINT, CHECKPOINT_PREV, RunDir, atomic_write_with


class CheckpointError(Exception):
    """A checkpoint that cannot be used (corrupt, truncated, not ours, or holding more than tensors and plain data)."""


def atomic_torch_save(path: Path, obj: Any) -> None:
    """``torch.save(obj)`` into ``path`` atomically (temp file + rename; see ``store.atomic_write_with``)."""
    atomic_write_with(path, lambda f: torch.save(obj, f))


def load_checkpoint_file(path: Path, run_id: str) -> dict[str, Any]:
    """One checkpoint, loaded with ``weights_only=True``: tensors, numbers, strings and plain containers only, so a
    results directory from anywhere can never run code when a run resumes. Raises ``CheckpointError``."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused an object: never executed
        what = re.search(r"GLOBAL \S+", str(e))
        raise CheckpointError(f"{path}: holds objects other than tensors and plain data"
                              f"{f' ({what.group(0)})' if what else ''}; refused without loading them") from None
    except Exception as e:  # noqa: BLE001 - truncated, empty, random bytes: any reader error
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    if not isinstance(ck, dict) or not {"run_id", "trainer", "records"} <= set(ck):
        raise CheckpointError(f"{path}: not a fedx-bench checkpoint")
    if ck.get("run_id") != run_id:
        raise CheckpointError(f"{path}: belongs to run {ck.get('run_id')!r}, not {run_id}")
    return ck


def save_checkpoint(rd: RunDir, obj: dict[str, Any]) -> None:
    """Keep the last two checkpoints: the current latest becomes ``checkpoint.prev.pt`` (a rename, atomic), then
    the new one is written atomically. At every instant at least one intact checkpoint is on disk."""
    latest, prev = rd.file(CHECKPOINT), rd.file(CHECKPOINT_PREV)
    if latest.exists():
        os.replace(latest, prev)
    atomic_torch_save(latest, obj)


def load_checkpoint(rd: RunDir, warn: Callable[[str], Any] | None = None) -> dict[str, Any] | None:
    """The newest usable checkpoint (latest, else the previous one), or None (fresh start). Each unusable file
    is reported through ``warn(message)`` naming it, and set aside as ``<name>.bad`` so it is never tried again
    (nor mistaken for a good one)."""
    for name in (CHECKPOINT, CHECKPOINT_PREV):
        path = rd.file(name)
        if not path.exists():
            continue
        try:
            return load_checkpoint_file(path, rd.run_id)
        except CheckpointError as e:
            fallback = "the previous checkpoint" if name == CHECKPOINT else "a fresh start"
            if warn is not None:
                warn(f"{e}; falling back to {fallback}")
            try:
                os.replace(path, path.with_name(name + ".bad"))
            except OSError:
                pass
    return None

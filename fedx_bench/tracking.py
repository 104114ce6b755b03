"""Experiment tracking: TensorBoard event files per run (``--tensorboard`` or ``log.tensorboard: true``).

Written beside the run's own files, in ``<results>/runs/<id>/tensorboard/``, so ``tensorboard --logdir results``
shows every run of every suite. Tracking never changes a result (``log`` is not part of the run id) and the
metrics.jsonl stays the record: the event files are a view of it, one point per round.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .errors import UserError

TB_DIR = "tensorboard"
_WRITERS: dict[str, Any] = {}


def require_tensorboard() -> None:
    """Fail before any run starts (exit 2) when tracking is asked for and the extra is missing."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard extra: pip install 'fedx-bench[tensorboard]'") from None


def scalars(rec: dict[str, Any]) -> dict[str, float]:
    """The tags of one metrics.jsonl record: ``loss/<term>`` for every loss term, ``eval/<metric>`` for the
    evaluation protocols (linear probe, kNN), ``time/<what>_seconds``, ``method/<stat>`` for method diagnostics."""
    out: dict[str, float] = {}

    def put(tag: str, v: Any) -> None:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[tag] = float(v)

    for k, v in (rec.get("losses") or {}).items():
        put(f"loss/{k}", v)
    for k, v in (rec.get("method_stats") or {}).items():
        put(f"method/{k}", v)
    for k, v in rec.items():
        if k in ("round", "losses", "method_stats", "steps", "clients"):
            continue
        put(f"time/{k}" if k.endswith("_seconds") else f"eval/{k}", v)
    return out


def log_record(cfg: Any, run_path: Path, rec: dict[str, Any]) -> None:
    """Log one round's record (round 0: the random-init evaluation) when the run asks for TensorBoard; closes
    the run's writer after its final round. A no-op otherwise."""
    if not getattr(getattr(cfg, "log", None), "tensorboard", False):
        return
    from torch.utils.tensorboard import SummaryWriter

    key = str(run_path)
    w = _WRITERS.get(key)
    if w is None:
        w = _WRITERS[key] = SummaryWriter(log_dir=str(Path(run_path) / TB_DIR))
    step = int(rec.get("round", 0))
    for tag, v in scalars(rec).items():
        w.add_scalar(tag, v, step)
    w.flush()
    if step >= cfg.federation.rounds:
        w.close()
        _WRITERS.pop(key, None)


def read_scalars(run_path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a run's event files, read back with TensorBoard's own reader: tag → [(round, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_path) / TB_DIR), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}

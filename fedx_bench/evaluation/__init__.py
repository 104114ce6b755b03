"""Evaluation protocols on frozen features, each a named, versioned entry of ``EVALUATIONS``.

Results must carry ``protocol_id(name)`` (e.g. ``linear_probe@fedx-v1``) so reports can say which
protocol produced a number; a protocol changes only by registering a new version.
"""

from __future__ import annotations

from ..registry import EVALUATIONS
from .features import extract_features
from .knn import knn_accuracy
from .linear_probe import linear_probe, linear_probe_plain

PROTOCOL_VERSIONS: dict[str, str] = {"linear_probe": "fedx-v1", "knn": "v1"}


def protocol_id(name: str) -> str:
    """``"linear_probe"`` -> ``"linear_probe@fedx-v1"``; unknown names raise a ConfigError."""
    EVALUATIONS.get(name)
    return f"{name}@{EVALUATIONS.meta(name)['version']}"


EVALUATIONS.add(
    "linear_probe",
    linear_probe,
    version=PROTOCOL_VERSIONS["linear_probe"],
    metrics=("top1", "top5"),
    description=(
        "Reference linear probe (spec §4.1): fresh Linear(d, classes) on frozen backbone features, "
        "Adam lr 1e-3 wd 1e-6, batch 64, 100 epochs, top-1/top-5 on the test split."
    ),
)
EVALUATIONS.add(
    "knn",
    knn_accuracy,
    version=PROTOCOL_VERSIONS["knn"],
    metrics=("top1",),
    description="Weighted kNN monitor on L2-normalised features, k=200, temperature 0.1 (beyond the paper).",
)

__all__ = [
    "PROTOCOL_VERSIONS",
    "extract_features",
    "knn_accuracy",
    "linear_probe",
    "linear_probe_plain",
    "protocol_id",
]

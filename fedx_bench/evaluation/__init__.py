"""Evaluation protocols of the global encoder, each a named, versioned entry of ``EVALUATIONS``.

Results must carry ``protocol_id(name)`` (e.g. ``linear_probe@fedx-v1``) so reports can say which
protocol produced a number; a protocol changes only by registering a new version.
"""

from __future__ import annotations

from ..registry import EVALUATIONS
from .angle import angle_round, angles_deg, class_angle_structure, drift_summary
from .features import extract_features
from .knn import knn_accuracy
from .linear_probe import linear_probe, linear_probe_plain
from .semi_supervised import balanced_subset, semi_supervised_finetune

PROTOCOL_VERSIONS: dict[str, str] = {"linear_probe": "fedx-v1", "knn": "v1", "semi_supervised": "v1", "angle": "v1"}


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
EVALUATIONS.add(
    "semi_supervised",
    semi_supervised_finetune,
    version=PROTOCOL_VERSIONS["semi_supervised"],
    metrics=("top1", "top5"),
    description=(
        "Benchmark-defined (not from the paper): class-balanced 1%/10% labelled subset (seed recorded); final "
        "global encoder + Linear(d, classes) fine-tuned with SGD nesterov, lr 0.01/0.1, wd 5e-4, batch 64, "
        "50 epochs cosine, training augmentation; final-epoch top-1/top-5 on the test split."
    ),
)
EVALUATIONS.add(
    "angle",
    angle_round,
    version=PROTOCOL_VERSIONS["angle"],
    metrics=("drift_mean", "intra", "inter", "gap"),
    description=(
        "Benchmark-defined (not from the paper): angles on L2-normalised test-split backbone features; "
        "local-global drift per client (frequent/rare classes) and the global model's intra/inter-class angles."
    ),
)

__all__ = [
    "PROTOCOL_VERSIONS",
    "angle_round",
    "angles_deg",
    "balanced_subset",
    "class_angle_structure",
    "drift_summary",
    "extract_features",
    "knn_accuracy",
    "linear_probe",
    "linear_probe_plain",
    "protocol_id",
    "semi_supervised_finetune",
]

"""Evaluation protocols of the global encoder, each a named, versioned ``Protocol`` entry of ``EVALUATIONS``.

Results must carry ``protocol_id(name)`` (e.g. ``linear_probe@fedx-v1``) so reports can say which
protocol produced a number; a protocol changes only by registering a new version. Each protocol is one file
that defines its computation and registers its entry (``protocol.py`` holds the interface); importing the
file here (any name from it) is its one registration.
"""

from __future__ import annotations

from .angle import angle_round, angles_deg, class_angle_structure, drift_summary
from .features import extract_features
from .knn import knn_accuracy
from .linear_probe import linear_probe, linear_probe_plain
from .protocol import (
    FINAL,
    PER_ROUND,
    EvalContext,
    Protocol,
    RoundMetricProtocol,
    RunContext,
    get_protocol,
    protocol_id,
    protocol_versions,
    register_protocol,
    unregister_protocol,
)
from .semi_supervised import balanced_subset, indices_sha256, semi_supervised_finetune

__all__ = [
    "FINAL",
    "PER_ROUND",
    "EvalContext",
    "Protocol",
    "RoundMetricProtocol",
    "RunContext",
    "angle_round",
    "angles_deg",
    "balanced_subset",
    "class_angle_structure",
    "drift_summary",
    "extract_features",
    "get_protocol",
    "indices_sha256",
    "knn_accuracy",
    "linear_probe",
    "linear_probe_plain",
    "protocol_id",
    "protocol_versions",
    "register_protocol",
    "semi_supervised_finetune",
    "unregister_protocol",
]

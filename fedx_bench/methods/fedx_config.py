"""The FedX add-on's settings and its ablation table, torch-free: ``config`` validates against them and
``methods/fedx.py`` builds from them, without either importing the other's heavy half."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FEDX_VARIANTS: dict[str, dict[str, bool]] = {
    # name: which FedX terms are on (the local contrastive term is always the base method's own loss)
    "fedx": dict(local_relational=True, global_contrastive=True, global_relational=True, head=True),
    "fedx-no-relational": dict(local_relational=False, global_contrastive=True, global_relational=False, head=True),
    "fedx-no-global": dict(local_relational=True, global_contrastive=False, global_relational=False, head=False),
    "fedx-no-head": dict(local_relational=True, global_contrastive=True, global_relational=True, head=False),
    "fedx-local-only-relational": dict(
        local_relational=True, global_contrastive=True, global_relational=False, head=True
    ),
    "fedx-global-only-relational": dict(
        local_relational=False, global_contrastive=True, global_relational=True, head=True
    ),
}


@dataclass
class FedXConfig:
    """The FedX add-on (spec §2). ``variant`` picks the ablation of protocols.md."""

    enabled: bool = False
    variant: str = "fedx"
    temperature: float = 0.1  # τ: global contrastive and the student side of both relational losses
    tt: float = 0.1  # target temperature of the global relational loss
    ts: float = 0.1  # target temperature of the local relational loss
    head_hidden: int = 256
    head_dim: int | None = None  # None: model.proj_dim (it must match: the head's output meets the teacher's z)


def describe_terms(variant: str) -> dict[str, Any]:
    """Which FedX terms a variant uses (for reports and docs)."""
    return dict(FEDX_VARIANTS[variant])

"""FedAvg (McMahan et al., 2017): the data-size-weighted mean of every shared entry. The default aggregator.

Moved unchanged out of ``federated.py``: the same arithmetic in the same order, so every stored run's numbers
are reproduced exactly.
"""

from __future__ import annotations

from torch import Tensor

from ..registry import AGGREGATORS
from .base import Aggregate, weighted_entry


def fedavg(states: list[dict[str, Tensor]], weights: list[float]) -> dict[str, Tensor]:
    """Weighted average of every entry, weights normalised over the participants (fixes spec §6.7).

    Integer buffers (BN's ``num_batches_tracked``) are averaged in float64 and rounded back.
    """
    if not states:
        raise ValueError("fedavg needs at least one client state")
    total = float(sum(weights))
    w = [float(x) / total for x in weights]
    return {k: weighted_entry(states, k, w) for k in states[0]}


@AGGREGATORS.register(
    "fedavg",
    display="FedAvg",
    description="data-size-weighted mean of every shared entry (McMahan et al., 2017); the default",
)
def fedavg_aggregator(
    states: list[dict[str, Tensor]],
    weights: list[float],
    global_state: dict[str, Tensor],
    param_keys: frozenset[str],
) -> Aggregate:
    """The registry form of :func:`fedavg` (the round's global model and the parameter names are not needed)."""
    return Aggregate(fedavg(states, weights))

"""The aggregator contract: how the server turns the round's client states into the next global state.

An aggregator is a callable registered in ``AGGREGATORS`` and named by ``federation.aggregator``:

    aggregator(states, weights, global_state, param_keys) -> Aggregate

* ``states``: each participant's ``shared_state()`` after local training, in client order;
* ``weights``: each participant's number of training samples;
* ``global_state``: the round's starting global model (the one the clients received), same keys;
* ``param_keys``: which keys are learnable parameters (the rest are buffers such as BN statistics).

``Aggregate.stats`` holds scalar diagnostics, stored per round in ``metrics.jsonl`` as ``aggregator_stats``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Aggregate:
    """The next global state and the aggregator's diagnostics for this round."""

    state: dict[str, Tensor]
    stats: dict[str, float] = field(default_factory=dict)


Aggregator = Callable[[list[dict[str, Tensor]], list[float], dict[str, Tensor], frozenset[str]], Aggregate]


def weighted_entry(states: list[dict[str, Tensor]], key: str, coeffs: list[float]) -> Tensor:
    """``sum_i coeffs[i] * states[i][key]``, accumulated in client order (one arithmetic for every rule, so a
    rule's numbers depend only on its coefficients). Integer buffers (BN's ``num_batches_tracked``) are combined
    in float64 and rounded back to their dtype."""
    ref = states[0][key]
    if ref.is_floating_point():
        acc = torch.zeros_like(ref)
        for c, s in zip(coeffs, states):
            acc.add_(s[key], alpha=c)
        return acc
    acc64 = sum(c * s[key].double() for c, s in zip(coeffs, states))
    return torch.round(acc64).to(ref.dtype)  # type: ignore[union-attr]

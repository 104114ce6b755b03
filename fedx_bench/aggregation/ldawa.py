"""L-DAWA (Rehman et al., ICCV 2023): layer-wise divergence-aware weight aggregation.

For every layer l (here: every parameter tensor of the shared state, buffers excluded) and every participating client
k, the angular divergence between the client's layer and the round's global layer is their cosine similarity

    δ_k^l = <W_g^l, W_k^l> / (‖W_g^l‖ ‖W_k^l‖)

and the new global layer is the δ-weighted mean over the K participants, with the paper's uniform 1/K:

    W_g^l ← (1/K) Σ_k δ_k^l W_k^l

so a client layer parallel to the global one (δ = 1) counts fully, an orthogonal one (δ = 0) not at all and an
opposite one (δ = −1) with a negative sign. The weights are not renormalised (the paper's rule): when the
clients diverge from the global model the aggregate shrinks towards zero.

Choices where the paper is silent (README, "Methods"):

* Buffers (BN running mean/var, ``num_batches_tracked``) carry no angular information: they are the uniform
  1/K mean (integer buffers in float64, rounded back, as in ``fedavg``).
* A layer whose global or client norm is zero (e.g. a zero-initialised bias before its first update) has no
  angle: δ = 1 for it.
* δ is computed in float64 and clamped to [−1, 1] (rounding can put it a hair outside).
* Clients' data sizes are not used (the paper's 1/K); ``weights`` is ignored.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..registry import AGGREGATORS
from .base import Aggregate, weighted_entry


def layer_cosines(client: dict[str, Tensor], global_state: dict[str, Tensor], keys: list[str]) -> dict[str, float]:
    """δ^l for one client: cosine similarity between its layer and the global layer, for each key in ``keys``."""
    out: dict[str, float] = {}
    for k in keys:
        a = client[k].detach().double().flatten()
        g = global_state[k].detach().double().flatten()
        na, ng = torch.linalg.vector_norm(a), torch.linalg.vector_norm(g)
        if float(na) == 0.0 or float(ng) == 0.0:
            out[k] = 1.0
        else:
            out[k] = float(torch.clamp(torch.dot(a, g) / (na * ng), -1.0, 1.0))
    return out


def ldawa(
    states: list[dict[str, Tensor]], global_state: dict[str, Tensor], param_keys: frozenset[str]
) -> tuple[dict[str, Tensor], list[dict[str, float]]]:
    """The L-DAWA aggregate and each client's per-layer δ (see the module docstring)."""
    if not states:
        raise ValueError("ldawa needs at least one client state")
    n = len(states)
    layers = [k for k in states[0] if k in param_keys and states[0][k].is_floating_point()]
    deltas = [layer_cosines(s, global_state, layers) for s in states]
    out: dict[str, Tensor] = {}
    for k in states[0]:
        ref = states[0][k]
        if k in deltas[0]:
            out[k] = weighted_entry(states, k, [d[k] / n for d in deltas])
        elif ref.is_floating_point():
            out[k] = weighted_entry(states, k, [1.0 / n] * n)
        else:  # the exact integer mean (sum, then divide), as the paper's uniform 1/K
            out[k] = torch.round(sum(s[k].double() for s in states) / n).to(ref.dtype)  # type: ignore[union-attr]
    return out, deltas


@AGGREGATORS.register(
    "ldawa",
    display="L-DAWA",
    description="layer-wise divergence-aware: (1/K) sum_k cos(W_k^l, W_g^l) W_k^l per layer (Rehman et al., 2023)",
)
def ldawa_aggregator(
    states: list[dict[str, Tensor]],
    weights: list[float],
    global_state: dict[str, Tensor],
    param_keys: frozenset[str],
) -> Aggregate:
    """Registry form of :func:`ldawa`; stats: mean and minimum δ over the round's clients and layers."""
    out, deltas = ldawa(states, global_state, param_keys)
    vals = [v for d in deltas for v in d.values()]
    stats = {"ldawa_cos_mean": sum(vals) / len(vals), "ldawa_cos_min": min(vals)} if vals else {}
    return Aggregate(out, stats)

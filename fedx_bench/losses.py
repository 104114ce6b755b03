"""Pure loss functions (no state, no modules), mapped one-to-one to spec §2 and the baselines of §5."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(u: Tensor, v: Tensor, temperature: float) -> Tensor:
    """Symmetric NT-Xent over the union of both lists (spec §2.1).

    Rows of ``[u; v]`` are L2-normalised; row a's positive is a±B and its denominator holds the other
    2B-1 rows. Mean over all 2B anchors, exactly as the reference ``nt_xent``.
    """
    b = u.shape[0]
    w = F.normalize(torch.cat([u, v], dim=0), dim=1)
    sim = w @ w.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=sim.device), float("-inf"))
    target = (torch.arange(2 * b, device=sim.device) + b) % (2 * b)
    return F.cross_entropy(sim, target)


def relational_kl(
    u: Tensor, v: Tensor, anchors: Tensor, temperature: float, target_temperature: float
) -> Tensor:
    """The reference "JS" relational loss (spec §2.4): ½[KL(M‖P_u) + KL(M‖P_v)], batchmean.

    P_u = softmax(û·â/τ), M = ½[softmax(û·â/τ_T) + softmax(v̂·â/τ_T)]. No stop-gradient on M and the KL
    direction is KL(M‖P), as in the reference code (this is not a true Jensen–Shannon divergence).
    """
    a = F.normalize(anchors, dim=1)
    su = F.normalize(u, dim=1) @ a.t()
    sv = F.normalize(v, dim=1) @ a.t()
    m = 0.5 * (F.softmax(su / target_temperature, dim=1) + F.softmax(sv / target_temperature, dim=1))
    kl_u = F.kl_div(F.log_softmax(su / temperature, dim=1), m, reduction="batchmean")
    kl_v = F.kl_div(F.log_softmax(sv / temperature, dim=1), m, reduction="batchmean")
    return 0.5 * (kl_u + kl_v)


def info_nce_queue(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """MoCo InfoNCE: positive q·k, negatives q·queue (queue rows already L2-normalised); k is not detached here."""
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    pos = (q * k).sum(dim=1, keepdim=True)
    neg = q @ queue.t()
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """BYOL regression loss 2 − 2·cos(p, z), mean over the batch (z is the target, pass it detached)."""
    return (2 - 2 * F.cosine_similarity(p, z, dim=1)).mean()


def proto_nce(q: Tensor, prototypes: Tensor, concentration: Tensor, assignment: Tensor) -> Tensor:
    """PCL's prototype term for one clustering: cross-entropy over all prototypes with logits q̂·c_j/φ_j.

    ``prototypes`` (k, d) are L2-normalised, ``concentration`` (k,) holds φ_j > 0 and ``assignment`` (B,) each
    sample's prototype index. PCL samples r negative prototypes; this uses all k of them.
    """
    logits = F.normalize(q, dim=1) @ prototypes.t() / concentration
    return F.cross_entropy(logits, assignment)

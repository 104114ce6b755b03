"""A worked plug-in example: VICReg (Bardes, Ponce & LeCun, ICLR 2022) as a fedx-bench method, defined outside
the package (fedx-bench has no VICReg built in).

Use it from a suite without editing fedx-bench:

    method: my_vicreg:VICReg          # the module must be importable (PYTHONPATH=examples)

or publish it from your own package under the ``fedx_bench.methods`` entry-point group:

    [project.entry-points."fedx_bench.methods"]
    vicreg = "my_vicreg:VICReg"

``fedx: true`` works on it unchanged: the base class forwards the views (and FedX's random batch) and this
method only computes its loss from the projections (``compute_loss``).

VICReg's loss on the two views' embeddings z1, z2 (here the projector output, BN in the projector's hidden layer):
λ·invariance (MSE between z1 and z2) + μ·variance (hinge keeping each dimension's std above γ = 1, per view) +
ν·covariance (squared off-diagonal covariances / d, per view), with the paper's λ = μ = 25, ν = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedx_bench.methods import Method, Views
from fedx_bench.models import mlp_head


@dataclass
class VICRegArgs:
    sim_weight: float = 25.0  # λ, invariance
    var_weight: float = 25.0  # μ, variance
    cov_weight: float = 1.0  # ν, covariance
    eps: float = 1e-4  # inside the square root of the variance term


def _variance(z: Tensor, eps: float) -> Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def _covariance(z: Tensor) -> Tensor:
    n, d = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.t() @ zc / max(n - 1, 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


def vicreg_loss(z1: Tensor, z2: Tensor, args: VICRegArgs) -> tuple[Tensor, dict[str, Tensor]]:
    """The weighted VICReg loss and its three terms (detached) for logging."""
    inv = F.mse_loss(z1, z2)
    var = _variance(z1, args.eps) + _variance(z2, args.eps)
    cov = _covariance(z1) + _covariance(z2)
    loss = args.sim_weight * inv + args.var_weight * var + args.cov_weight * cov
    return loss, {"term_invariance": inv.detach(), "term_variance": var.detach(), "term_covariance": cov.detach()}


class VICReg(Method):
    """VICReg on the projector output of both views; no predictor, no stop-gradient, no momentum encoder."""

    name = "vicreg"
    Args = VICRegArgs

    def __init__(self, backbone: nn.Module, args: VICRegArgs, proj_hidden: int = 256, proj_dim: int = 256) -> None:
        super().__init__(backbone, args, proj_hidden, proj_dim)
        self.projector = mlp_head(self.feat_dim, proj_hidden, proj_dim, batch_norm=True)

    def compute_loss(self, v: Views) -> tuple[Tensor, dict[str, Tensor]]:
        loss, terms = vicreg_loss(v.z1, v.z2, self.args)
        return loss, {"loss_local_contrastive": loss.detach(), **terms}

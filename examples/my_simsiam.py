"""A worked plug-in example: SimSiam (Chen & He, 2021) as a fedx-bench method, defined outside the package.

Use it from a suite without editing fedx-bench:

    method: my_simsiam:SimSiam        # the module must be importable (PYTHONPATH=examples)

or publish it from your own package under the ``fedx_bench.methods`` entry-point group:

    [project.entry-points."fedx_bench.methods"]
    simsiam = "my_simsiam:SimSiam"

``fedx: true`` works on it unchanged: the base class forwards the views (and FedX's random batch) and this
method only computes its loss from the projections (``compute_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from fedx_bench.methods import Method, Views
from fedx_bench.models import mlp_head


@dataclass
class SimSiamArgs:
    pred_hidden: int = 64  # predictor bottleneck


class SimSiam(Method):
    """Predictor on the projection, negative cosine against the stop-gradient projection of the other view."""

    name = "simsiam"
    Args = SimSiamArgs

    def __init__(self, backbone, args: SimSiamArgs, proj_hidden: int = 256, proj_dim: int = 256) -> None:
        super().__init__(backbone, args, proj_hidden, proj_dim)
        self.predictor = mlp_head(proj_dim, args.pred_hidden, proj_dim)

    def compute_loss(self, v: Views) -> tuple[Tensor, dict[str, Tensor]]:
        p1, p2 = self.predictor(v.z1), self.predictor(v.z2)
        loss = -0.5 * (F.cosine_similarity(p1, v.z2.detach()).mean() + F.cosine_similarity(p2, v.z1.detach()).mean())
        return loss, {"loss_local_contrastive": loss.detach()}

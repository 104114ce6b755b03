"""A worked plug-in example: SimSiam (Chen & He, 2021) as a fedx-bench method, defined outside the package.

Use it from a suite without editing fedx-bench:

    method: my_simsiam:SimSiam        # the module must be importable (PYTHONPATH=examples)

or publish it from your own package under the ``fedx_bench.methods`` entry-point group:

    [project.entry-points."fedx_bench.methods"]
    simsiam = "my_simsiam:SimSiam"

``fedx: true`` works on it unchanged: FedX only needs ``training_step`` to return the projections.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from fedx_bench.methods import Method, StepOutput, forward_views
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

    def training_step(self, x1: Tensor, x2: Tensor, xr: Tensor | None = None) -> StepOutput:
        z1, z2, zr = forward_views(self, x1, x2, xr)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = -0.5 * (F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean())
        return StepOutput(loss=loss, z1=z1, z2=z2, zr=zr, logs={"loss_local_contrastive": loss.detach()})

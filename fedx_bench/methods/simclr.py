"""FedSimCLR: symmetric NT-Xent on the projection output (spec §5.2, the reference's ``nt_local``)."""

from __future__ import annotations

from ..losses import nt_xent
from ..registry import METHODS
from .base import LossTerms, Method, Views
from .specs import SimCLRArgs


@METHODS.register("simclr")
class SimCLR(Method):
    """FedSimCLR. The base forwards FedX's random batch (when there is one) with the two views in one pass, so BN
    statistics cover all 3B images exactly as in the reference FedX step; without FedX only the views are."""

    name = "simclr"
    Args = SimCLRArgs

    def compute_loss(self, v: Views) -> LossTerms:
        loss = nt_xent(v.z1, v.z2, self.args.temperature)
        return loss, {"loss_local_contrastive": loss.detach()}

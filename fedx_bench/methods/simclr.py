"""FedSimCLR: symmetric NT-Xent on the projection output (spec §5.2, the reference's ``nt_local``)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..losses import nt_xent
from ..registry import METHODS
from .base import Method, StepOutput, forward_views


@dataclass
class SimCLRArgs:
    temperature: float = 0.1  # τ of the reference code


@METHODS.register("simclr", display="FedSimCLR", description="SimCLR (NT-Xent), FedAvg of all parameters")
class SimCLR(Method):
    """FedSimCLR. When FedX supplies a random batch it is forwarded with the two views in one pass, so BN
    statistics cover all 3B images exactly as in the reference FedX step; without FedX only the views are."""

    name = "simclr"
    Args = SimCLRArgs

    def training_step(self, x1: Tensor, x2: Tensor, xr: Tensor | None = None) -> StepOutput:
        z1, z2, zr = forward_views(self, x1, x2, xr)
        loss = nt_xent(z1, z2, self.args.temperature)
        return StepOutput(loss=loss, z1=z1, z2=z2, zr=zr, logs={"loss_local_contrastive": loss.detach()})

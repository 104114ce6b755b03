"""FedSimSiam: SimSiam (Chen & He, CVPR 2021) in the federated loop, as in EasyFL's FedSSL study (Zhuang et al.).

Choices (benchmark-defined; the FedX paper has no SimSiam baseline):

* Encoder = ``encoder`` + ``projector``, the projector BYOL-style with BN:
  ``mlp_head(feat_dim, proj_hidden, proj_dim, batch_norm=True)`` (the same sizes as every other head here, so a
  ± FedX comparison differs only in the method). Predictor = the bottleneck
  ``mlp_head(proj_dim, pred_hidden, proj_dim, batch_norm=True)`` with ``pred_hidden`` = ``proj_dim // 4`` by
  default (SimSiam's 2048 → 512 → 2048 ratio).
* Loss: ½·D(p1, sg(z2)) + ½·D(p2, sg(z1)) with D = −cos (SimSiam's symmetric loss, range [−1, 1]); sg is the
  stop-gradient (``detach``). No momentum encoder and no negatives: nothing is kept on the client.
* Federated: the server averages encoder, projector and predictor; every round each client starts from the
  global model (EasyFL's FedSimSiam: update encoder and predictor with the global ones).
* FedX distils on the projection z (``StepOutput.z1/z2/zr``); its teacher is the round-start global encoder +
  projector. The random batch ``xr`` is forwarded with both views in one pass; the predictor sees the views only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..models import mlp_head
from ..registry import METHODS
from .base import Method, StepOutput, forward_views


@dataclass
class SimSiamArgs:
    pred_hidden: int | None = None  # None: model.proj_dim // 4 (SimSiam's bottleneck ratio)

    def __post_init__(self) -> None:
        if self.pred_hidden is not None and (
            isinstance(self.pred_hidden, bool) or not isinstance(self.pred_hidden, int) or self.pred_hidden < 1
        ):
            raise ConfigError(
                f"method_args.pred_hidden: expected a positive integer or null, got {self.pred_hidden!r}"
            )


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """½[D(p1, sg(z2)) + D(p2, sg(z1))], D = −cos, mean over the batch: the targets are detached here."""
    return -0.5 * (
        F.cosine_similarity(p1, z2.detach(), dim=1).mean() + F.cosine_similarity(p2, z1.detach(), dim=1).mean()
    )


@METHODS.register(
    "simsiam",
    display="FedSimSiam",
    description="SimSiam; stop-gradient + predictor, no momentum encoder; everything averaged",
)
class SimSiam(Method):
    """FedSimSiam; every choice is listed in the module docstring."""

    name = "simsiam"
    Args = SimSiamArgs

    def __init__(
        self, backbone: nn.Module, args: SimSiamArgs, proj_hidden: int = 256, proj_dim: int = 256
    ) -> None:
        super().__init__(backbone, args, proj_hidden, proj_dim)
        self.projector = mlp_head(self.feat_dim, proj_hidden, proj_dim, batch_norm=True)
        pred_hidden = args.pred_hidden if args.pred_hidden is not None else max(1, proj_dim // 4)
        self.predictor = mlp_head(proj_dim, pred_hidden, proj_dim, batch_norm=True)

    def training_step(self, x1: Tensor, x2: Tensor, xr: Tensor | None = None) -> StepOutput:
        z1, z2, zr = forward_views(self, x1, x2, xr)
        b = x1.shape[0]
        p = self.predictor(torch.cat([z1, z2], dim=0))
        loss = simsiam_loss(p[:b], p[b:], z1, z2)
        return StepOutput(loss=loss, z1=z1, z2=z2, zr=zr, logs={"loss_local_contrastive": loss.detach()})

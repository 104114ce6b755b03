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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import mlp_head
from ..registry import METHODS
from .base import LossTerms, Method, Views
from .specs import SimSiamArgs


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """½[D(p1, sg(z2)) + D(p2, sg(z1))], D = −cos, mean over the batch: the targets are detached here."""
    return -0.5 * (
        F.cosine_similarity(p1, z2.detach(), dim=1).mean() + F.cosine_similarity(p2, z1.detach(), dim=1).mean()
    )


@METHODS.register("simsiam")
class SimSiam(Method):
    """FedSimSiam; every choice is listed in the module docstring."""

    name = "simsiam"
    Args = SimSiamArgs

    def __init__(
        self, backbone: nn.Module, args: SimSiamArgs, proj_hidden: int = 256, proj_dim: int = 256
    ) -> None:
        super().__init__(backbone, args, proj_hidden, proj_dim)
        self.projector = mlp_head(self.feat_dim, proj_hidden, proj_dim, batch_norm=True)  # replaces base.py's
        pred_hidden = args.pred_hidden if args.pred_hidden is not None else max(1, proj_dim // 4)
        self.predictor = mlp_head(proj_dim, pred_hidden, proj_dim, batch_norm=True)

    def compute_loss(self, v: Views) -> LossTerms:
        b = v.x1.shape[0]
        p = self.predictor(torch.cat([v.z1, v.z2], dim=0))
        loss = simsiam_loss(p[:b], p[b:], v.z1, v.z2)
        return loss, {"loss_local_contrastive": loss.detach()}

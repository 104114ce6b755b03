"""FedBYOL: BYOL with a client-local EMA target network (spec §5.4, EasyFL's online/online mode).

Choices (benchmark-defined; the FedX authors' BYOL settings are UNKNOWN):

* Online network = ``encoder`` + ``projector``, where the projector is BYOL-style with BN:
  ``mlp_head(feat_dim, proj_hidden, proj_dim, batch_norm=True)``. Predictor
  ``mlp_head(proj_dim, pred_hidden, proj_dim, batch_norm=True)``. ``pred_hidden`` defaults to the model
  config's ``proj_hidden``, so every head has the same sizes as FedX's heads (512→256→256 for ResNet-18)
  rather than EasyFL's 4096/2048: the ± FedX comparison then differs only in the method.
* Target = ``target_encoder`` + ``target_projector``, an EMA of the online network with decay ``ema``
  (0.99, EasyFL), updated after every optimiser step: θ_t ← τθ_t + (1−τ)θ_o; buffers (BN statistics) are
  copied. ``requires_grad=False``, so the optimiser covers online encoder, projector and predictor only.
* Loss: byol_loss(p1, z_t2) + byol_loss(p2, z_t1), targets under no_grad (sum of both directions, as in
  BYOL/EasyFL).
* Federated: the server averages the online encoder, projector and predictor. The target stays on the
  client across rounds (``local_prefixes = ("target_",)``); at a client's first participation it is
  initialised from the global online network just received.
* FedX attaches to the ONLINE projection (``StepOutput.z1/z2/zr``); its teacher is the round-start global
  online encoder + projector (``student_network``), not the EMA target (spec §5.7). FedX's extra head h^m is
  a new head, separate from BYOL's predictor.
* The random batch ``xr`` is forwarded with the two views in one pass through the online network; the
  predictor and the target see the two views only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..losses import byol_loss
from ..models import mlp_head
from ..registry import METHODS
from .base import ClientState, LossTerms, Method, Views
from .momentum import copy_module_, frozen_copy, momentum_update_
from .specs import BYOLArgs


@METHODS.register("byol")
class BYOL(Method):
    """FedBYOL; every choice is listed in the module docstring."""

    name = "byol"
    Args = BYOLArgs
    local_prefixes = ("target_",)

    def __init__(
        self, backbone: nn.Module, args: BYOLArgs, proj_hidden: int = 256, proj_dim: int = 256
    ) -> None:
        super().__init__(backbone, args, proj_hidden, proj_dim)
        self.projector = mlp_head(self.feat_dim, proj_hidden, proj_dim, batch_norm=True)  # replaces base.py's
        pred_hidden = args.pred_hidden if args.pred_hidden is not None else proj_hidden
        self.predictor = mlp_head(proj_dim, pred_hidden, proj_dim, batch_norm=True)
        self.target_encoder = frozen_copy(self.encoder, eval_mode=False)
        self.target_projector = frozen_copy(self.projector, eval_mode=False)

    def target_project(self, x: Tensor) -> Tensor:
        """Target-network projection (no gradient)."""
        with torch.no_grad():
            return self.target_projector(self.target_encoder(x).flatten(1))

    def compute_loss(self, v: Views) -> LossTerms:
        b = v.x1.shape[0]
        p = self.predictor(torch.cat([v.z1, v.z2], dim=0))
        t = self.target_project(torch.cat([v.x1, v.x2], dim=0))
        loss = byol_loss(p[:b], t[b:]) + byol_loss(p[b:], t[:b])
        return loss, {"loss_local_contrastive": loss.detach()}

    def after_optimizer_step(self) -> None:
        momentum_update_(self.target_encoder, self.encoder, self.args.ema, copy_buffers=True)
        momentum_update_(self.target_projector, self.projector, self.args.ema, copy_buffers=True)

    def init_target_from_online(self) -> None:
        """Target ← online encoder + projector (parameters and buffers)."""
        copy_module_(self.target_encoder, self.encoder)
        copy_module_(self.target_projector, self.projector)

    def on_round_start(self, round_idx: int, client_state: ClientState | None) -> None:
        super().on_round_start(round_idx, client_state)  # restores this client's target
        if not (client_state and any(k.startswith("target_") for k in client_state.get("tensors", {}))):
            self.init_target_from_online()  # first participation: target = the global online network

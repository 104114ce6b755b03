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

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..losses import byol_loss
from ..models import mlp_head
from ..registry import METHODS
from .base import ClientState, Method, StepOutput, forward_views
from .moco import copy_module_, frozen_twin, momentum_update_


@dataclass
class BYOLArgs:
    ema: float = 0.99  # target decay τ (EasyFL)
    pred_hidden: int | None = None  # None: the model config's proj_hidden (see module docstring)

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema <= 1.0:
            raise ConfigError(f"method_args.ema: must be in [0, 1], got {self.ema}")
        if self.pred_hidden is not None and (
            isinstance(self.pred_hidden, bool)
            or not isinstance(self.pred_hidden, int)
            or self.pred_hidden < 1
        ):
            raise ConfigError(
                f"method_args.pred_hidden: expected a positive integer or null, got {self.pred_hidden!r}"
            )


@METHODS.register(
    "byol",
    display="FedBYOL",
    description="BYOL; EMA target kept on each client, online network + predictor averaged",
)
class BYOL(Method):
    """FedBYOL; every choice is listed in the module docstring."""

    name = "byol"
    Args = BYOLArgs
    local_prefixes = ("target_",)

    def __init__(
        self, backbone: nn.Module, args: BYOLArgs, proj_hidden: int = 256, proj_dim: int = 256
    ) -> None:
        super().__init__(backbone, args, proj_hidden, proj_dim)
        self.projector = mlp_head(self.feat_dim, proj_hidden, proj_dim, batch_norm=True)
        pred_hidden = args.pred_hidden if args.pred_hidden is not None else proj_hidden
        self.predictor = mlp_head(proj_dim, pred_hidden, proj_dim, batch_norm=True)
        self.target_encoder = frozen_twin(self.encoder)
        self.target_projector = frozen_twin(self.projector)

    def target_project(self, x: Tensor) -> Tensor:
        """Target-network projection (no gradient)."""
        with torch.no_grad():
            return self.target_projector(self.target_encoder(x).flatten(1))

    def training_step(self, x1: Tensor, x2: Tensor, xr: Tensor | None = None) -> StepOutput:
        z1, z2, zr = forward_views(self, x1, x2, xr)
        b = x1.shape[0]
        p = self.predictor(torch.cat([z1, z2], dim=0))
        t = self.target_project(torch.cat([x1, x2], dim=0))
        loss = byol_loss(p[:b], t[b:]) + byol_loss(p[b:], t[:b])
        return StepOutput(loss=loss, z1=z1, z2=z2, zr=zr, logs={"loss_local_contrastive": loss.detach()})

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

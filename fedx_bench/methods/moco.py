"""FedMoCo: MoCo v2 with a momentum key network and a per-client queue of negatives (spec §5.3).

Choices (benchmark-defined; the FedX authors' MoCo settings are UNKNOWN):

* Query network = ``encoder`` + ``projector`` (the base MLP head, no BN, as MoCo v2), so FedX distils on
  the query projection. Key network = ``key_encoder`` + ``key_projector``, a momentum copy with
  ``requires_grad=False``; m = ``momentum`` (0.99, EasyFL), τ = ``temperature`` (0.2, MoCo v2).
* Loss: the mean of the two directions, ½[ℓ(q1, k2) + ℓ(q2, k1)], with ℓ = InfoNCE against the queue.
  The mean (not EasyFL's sum) keeps the scale of a one-direction InfoNCE, so SGD's learning rate means the
  same as for SimCLR's already-symmetric NT-Xent.
* Momentum update in ``after_optimizer_step`` (parameters only; the key BN keeps its own running stats,
  as in MoCo). The keys of step t therefore come from the key network updated after step t-1, which is
  MoCo's update-before-forward order; only the very first step of a client round differs, and there the
  update is a no-op when the key network was just reset to the query network.
* Queue: ``queue_size`` (4096) L2-normalised keys of dim ``proj_dim`` in the buffer ``queue`` plus the
  write pointer ``queue_ptr``. Both views' keys are enqueued after the optimiser step (FIFO with
  wrap-around, the size never changes). The queue is per-client persistent state
  (``local_prefixes = ("queue",)``) and is never averaged. It starts as random unit vectors from torch's
  global RNG, at construction and again at a client's first participation, because the federated loop
  reuses one local model for all clients and would otherwise hand a new client the previous client's keys.
* Key network: averaged by the server like the query network (spec §5.3), and, with
  ``reset_key_encoder`` (default), reset to the freshly received global query network at every round start.
* No batch-shuffle BN: on a single device one shuffled BN batch has the same statistics as the unshuffled
  one (EasyFL's single-GPU shuffle is likewise a no-op), so the key network sees ``cat(x1, x2)`` in one pass.
* With FedX's random batch ``xr``, the query network forwards ``cat(x1, x2, xr)`` in one pass (BN statistics
  over all 3B images, as in the FedX reference step); keys are computed for the two views only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..losses import info_nce_queue
from ..registry import METHODS
from .base import ClientState, Method, StepOutput, forward_views


@torch.no_grad()
def momentum_update_(target: nn.Module, online: nn.Module, decay: float, copy_buffers: bool = False) -> None:
    """θ_t ← decay·θ_t + (1 − decay)·θ_o for every parameter; buffers are copied when ``copy_buffers``."""
    for pt, po in zip(target.parameters(), online.parameters(), strict=True):
        pt.mul_(decay).add_(po.detach(), alpha=1.0 - decay)
    if copy_buffers:
        for bt, bo in zip(target.buffers(), online.buffers(), strict=True):
            bt.copy_(bo)


@torch.no_grad()
def copy_module_(target: nn.Module, source: nn.Module) -> None:
    """Make ``target`` an exact copy (parameters and buffers) of ``source``, in place."""
    target.load_state_dict(source.state_dict())


def frozen_twin(module: nn.Module) -> nn.Module:
    """A deep copy with gradients off: momentum/EMA networks are updated by hand, never by the optimiser."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@dataclass
class MoCoArgs:
    temperature: float = 0.2  # MoCo v2
    momentum: float = 0.99  # EasyFL's key-encoder momentum
    queue_size: int = 4096  # EasyFL's K
    reset_key_encoder: bool = True  # reset the key network to the global query network every round

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"method_args.temperature: must be > 0, got {self.temperature}")
        if not 0.0 <= self.momentum <= 1.0:
            raise ConfigError(f"method_args.momentum: must be in [0, 1], got {self.momentum}")
        if self.queue_size < 1:
            raise ConfigError(f"method_args.queue_size: must be >= 1, got {self.queue_size}")


@METHODS.register(
    "moco",
    display="FedMoCo",
    description="MoCo v2; per-client queue, key network reset to the global query network",
)
class MoCo(Method):
    """FedMoCo; every choice is listed in the module docstring."""

    name = "moco"
    Args = MoCoArgs
    local_prefixes = ("queue",)

    def __init__(
        self, backbone: nn.Module, args: MoCoArgs, proj_hidden: int = 256, proj_dim: int = 256
    ) -> None:
        super().__init__(backbone, args, proj_hidden, proj_dim)
        self.key_encoder = frozen_twin(self.encoder)
        self.key_projector = frozen_twin(self.projector)
        self.register_buffer("queue", self._random_queue())
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._pending_keys: Tensor | None = None

    def _random_queue(self, device: torch.device | None = None) -> Tensor:
        q = torch.randn(self.args.queue_size, self.proj_dim)  # CPU draw: the same values on every device
        return F.normalize(q, dim=1).to(device) if device is not None else F.normalize(q, dim=1)

    # ----------------------------------------------------------------- forward pieces
    def key_project(self, x: Tensor) -> Tensor:
        """Key-network projection (no gradient)."""
        with torch.no_grad():
            return self.key_projector(self.key_encoder(x).flatten(1))

    def _queries_and_keys(
        self, x1: Tensor, x2: Tensor, xr: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor, Tensor]:
        q1, q2, qr = forward_views(self, x1, x2, xr)
        k = self.key_project(torch.cat([x1, x2], dim=0))
        b = x1.shape[0]
        return q1, q2, qr, k[:b], k[b:]

    def _info_nce(self, q1: Tensor, q2: Tensor, k1: Tensor, k2: Tensor) -> Tensor:
        queue = self.queue.clone().detach()  # the queue is written in place after the step
        t = self.args.temperature
        return 0.5 * (info_nce_queue(q1, k2, queue, t) + info_nce_queue(q2, k1, queue, t))

    def training_step(self, x1: Tensor, x2: Tensor, xr: Tensor | None = None) -> StepOutput:
        q1, q2, qr, k1, k2 = self._queries_and_keys(x1, x2, xr)
        loss = self._info_nce(q1, q2, k1, k2)
        self._pending_keys = torch.cat([k1, k2], dim=0)
        return StepOutput(loss=loss, z1=q1, z2=q2, zr=qr, logs={"loss_local_contrastive": loss.detach()})

    # ----------------------------------------------------------------- state updates
    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """FIFO write of L2-normalised ``keys`` at ``queue_ptr`` with wrap-around; the size never changes.
        Pure tensor arithmetic on the pointer, so a step costs no host-device sync."""
        keys = F.normalize(keys.detach(), dim=1).to(self.queue.dtype)
        size = self.queue.shape[0]
        n = keys.shape[0]
        if n > size:  # more keys than slots: only the newest ``size`` survive a FIFO
            self.queue_ptr.add_(n - size).remainder_(size)
            keys, n = keys[-size:], size
        idx = (self.queue_ptr + torch.arange(n, device=self.queue.device)).remainder_(size)
        self.queue.index_copy_(0, idx, keys)
        self.queue_ptr.add_(n).remainder_(size)

    def after_optimizer_step(self) -> None:
        momentum_update_(self.key_encoder, self.encoder, self.args.momentum)
        momentum_update_(self.key_projector, self.projector, self.args.momentum)
        if self._pending_keys is not None:
            self.enqueue(self._pending_keys)
            self._pending_keys = None

    def reset_key_network(self) -> None:
        """Key network ← query network (parameters and BN buffers)."""
        copy_module_(self.key_encoder, self.encoder)
        copy_module_(self.key_projector, self.projector)

    def on_round_start(self, round_idx: int, client_state: ClientState | None) -> None:
        super().on_round_start(round_idx, client_state)  # restores this client's queue
        if not (client_state and "queue" in client_state.get("tensors", {})):
            with torch.no_grad():  # first participation: a fresh random queue, not the previous client's
                self.queue.copy_(self._random_queue(self.queue.device))
                self.queue_ptr.zero_()
        if self.args.reset_key_encoder:
            self.reset_key_network()
        self._pending_keys = None

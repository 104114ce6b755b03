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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import info_nce_queue
from ..registry import METHODS
from .base import ClientState, LossTerms, Method, Views
from .momentum import copy_module_, frozen_copy, momentum_update_
from .specs import MoCoArgs


@METHODS.register("moco")
class MoCo(Method):
    """FedMoCo; every choice is listed in the module docstring."""

    name = "moco"
    Args = MoCoArgs
    local_prefixes = ("queue",)

    def __init__(
        self, backbone: nn.Module, args: MoCoArgs, proj_hidden: int = 256, proj_dim: int = 256
    ) -> None:
        super().__init__(backbone, args, proj_hidden, proj_dim)
        self.key_encoder = frozen_copy(self.encoder, eval_mode=False)
        self.key_projector = frozen_copy(self.projector, eval_mode=False)
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

    def _keys(self, v: Views) -> tuple[Tensor, Tensor]:
        """Both views' keys, in one key-network pass of ``cat(x1, x2)``; queued after the optimiser step."""
        k = self.key_project(torch.cat([v.x1, v.x2], dim=0))
        self._pending_keys = k
        b = v.x1.shape[0]
        return k[:b], k[b:]

    def _info_nce(self, q1: Tensor, q2: Tensor, k1: Tensor, k2: Tensor) -> Tensor:
        queue = self.queue.clone().detach()  # the queue is written in place after the step
        t = self.args.temperature
        return 0.5 * (info_nce_queue(q1, k2, queue, t) + info_nce_queue(q2, k1, queue, t))

    def compute_loss(self, v: Views) -> LossTerms:
        k1, k2 = self._keys(v)
        loss = self._info_nce(v.z1, v.z2, k1, k2)
        return loss, {"loss_local_contrastive": loss.detach()}

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

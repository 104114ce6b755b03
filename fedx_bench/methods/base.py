"""The method interface every self-supervised method implements, and the client-state contract.

A method is an ``nn.Module`` holding an encoder (the backbone whose features are evaluated), a
projector, and whatever else it needs. The federated loop talks to it only through:

* ``training_step(x1, x2, xr)`` → ``StepOutput`` (its own loss plus the student projections of both
  views and of the optional random batch, which is what the FedX add-on needs). The base does this step's
  shared forward (``forward_views``: one pass of ``cat(x1, x2[, xr])``, so the random batch is forwarded
  whenever the loop supplies it, i.e. when the FedX add-on asks for it) and a method only computes its loss
  from the result (``compute_loss``), so no method can forget the random batch (solo-learn's base forward);
* ``after_optimizer_step()`` (EMA targets, queues);
* ``on_round_start(round, client_state)`` / ``client_state()`` (per-client persistent state);
* ``shared_state()`` (what the server averages) and ``local_prefixes`` (what it never averages).

FedX (``methods/fedx.py``) wraps any such method without knowing which one it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..models import mlp_head


@dataclass
class StepOutput:
    """One local step's result. ``logs`` holds detached scalar tensors (no device sync per step)."""

    loss: Tensor
    z1: Tensor
    z2: Tensor
    zr: Tensor | None = None
    logs: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Views:
    """One step's shared forward: the augmented inputs and their student projections z = ``project(x)``.
    ``xr``/``zr``: the random batch and its projections (None when the step has none)."""

    x1: Tensor
    x2: Tensor
    xr: Tensor | None
    z1: Tensor
    z2: Tensor
    zr: Tensor | None


LossTerms = tuple[Tensor, dict[str, Tensor]]
"""``compute_loss``'s result: the loss and its logged terms (detached scalars; ``loss_local_contrastive`` is the
method's own loss by convention)."""

ClientState = dict[str, Any]
"""Per-client persistent state: tensors (cloned) and plain JSON-able values; checkpointable with torch.save."""


class Method(nn.Module):
    """Base class. Subclasses set ``name``, ``Args`` (a dataclass of hyperparameters) and implement
    ``compute_loss``. The default encoder/projector layout is backbone → MLP(d→hidden→proj_dim)."""

    name: ClassVar[str] = "base"
    Args: ClassVar[type] = type("Args", (), {})
    local_prefixes: ClassVar[tuple[str, ...]] = ()  # state_dict prefixes kept per client, never averaged
    uses_random_batch: ClassVar[bool] = False

    def __init__(self, backbone: nn.Module, args: Any, proj_hidden: int = 256, proj_dim: int = 256) -> None:
        super().__init__()
        self.args = args
        self.encoder = backbone
        self.feat_dim: int = int(backbone.out_dim)  # type: ignore[arg-type]
        self.proj_dim = proj_dim
        # BYOL and SimSiam replace this projector with a BN one. It is built all the same: its initialisation
        # draws from torch's global RNG, so every weight initialised after it (the replacement projector, the
        # predictor) and hence every stored number depends on it being drawn here.
        self.projector = mlp_head(self.feat_dim, proj_hidden, proj_dim)

    # ----------------------------------------------------------------- configuration
    @classmethod
    def parse_args(cls, d: dict[str, Any] | None) -> Any:
        """Validate ``method_args`` against ``cls.Args`` with the config's typed conversion; unknown keys, wrong
        types and impossible values are ConfigErrors."""
        from ..config import parse_method_args

        return parse_method_args(cls.Args, d, cls.name)

    # ----------------------------------------------------------------- forward pieces
    def features(self, x: Tensor) -> Tensor:
        """The representation that is evaluated (backbone output, no heads)."""
        return self.encoder(x).flatten(1)

    def project(self, x: Tensor) -> Tensor:
        """Student projection output z = g(f(x)); the FedX add-on distils on this."""
        return self.projector(self.features(x))

    def student_network(self) -> nn.Module:
        """The modules that map images to ``project`` outputs; FedX copies them as the round's teacher."""
        return _Projector(self.encoder, self.projector)

    def forward_views(self, x1: Tensor, x2: Tensor, xr: Tensor | None = None) -> Views:
        """The shared forward: one pass of ``cat(x1, x2[, xr])`` through ``project``, so BN sees the whole
        concatenated batch (the reference FedX step)."""
        parts = [x1, x2] if xr is None else [x1, x2, xr]
        z = self.project(torch.cat(parts, dim=0))
        b = x1.shape[0]
        return Views(x1, x2, xr, z[:b], z[b : 2 * b], z[2 * b :] if xr is not None else None)

    def compute_loss(self, v: Views) -> LossTerms:
        """The method's own loss from the shared forward ``v`` (its other networks, e.g. a predictor or a
        momentum encoder, forward the views here)."""
        raise NotImplementedError

    def training_step(self, x1: Tensor, x2: Tensor, xr: Tensor | None = None) -> StepOutput:
        """One local step: the shared forward, then ``compute_loss``. Methods implement ``compute_loss``; an
        override of this (a plug-in's instrumentation) calls ``super()``."""
        v = self.forward_views(x1, x2, xr)
        loss, logs = self.compute_loss(v)
        return StepOutput(loss=loss, z1=v.z1, z2=v.z2, zr=v.zr, logs=logs)

    def after_optimizer_step(self) -> None:
        """Hook after each optimiser step (EMA updates, queue pushes)."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the local optimiser updates (EMA/target networks excluded by requires_grad=False)."""
        return [p for p in self.parameters() if p.requires_grad]

    # ----------------------------------------------------------------- federated state
    def _is_local(self, key: str) -> bool:
        return any(key.startswith(p) for p in self.local_prefixes)

    def shared_state(self) -> dict[str, Tensor]:
        """State entries the server averages (all but ``local_prefixes``): spec §1.2 averages everything."""
        return {k: v for k, v in self.state_dict().items() if not self._is_local(k)}

    def load_shared_state(self, state: dict[str, Tensor]) -> None:
        """Load the global model's shared entries; local entries are left as they are."""
        own = self.state_dict()
        missing = [k for k in own if not self._is_local(k) and k not in state]
        if missing:
            raise KeyError(f"global state lacks {missing[:3]}")
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v)

    def on_round_start(self, round_idx: int, client_state: ClientState | None) -> None:
        """Called after the global state is loaded into the client's model. Restores local entries by default.

        One local model object serves every client in turn, so ``client_state is None`` (a client's first
        participation) means the local entries still hold the previous client's values: a method with
        ``local_prefixes`` must (re)initialise them here in that case (BYOL copies the online network into
        its target, MoCo draws a fresh queue)."""
        if client_state:
            own = self.state_dict()
            with torch.no_grad():
                for k, v in client_state.get("tensors", {}).items():
                    own[k].copy_(v)

    def prepare_local_training(self, images: Tensor, transform: Callable[[Tensor], Tensor]) -> None:
        """Called once per client round, after ``on_round_start``, with the client's uint8 images (N,H,W,C) on
        the device and the test transform (uint8 → normalised float NCHW). For methods that need a pass over
        local data before training (e.g. ProtoCL's k-means). Default: nothing."""

    def round_stats(self) -> dict[str, float]:
        """Diagnostics of one client's local training, read after ``client_state``; the loop averages them over
        the round's clients into ``metrics.jsonl`` (``method_stats``), so that a method's internal decisions
        (e.g. FedU's DAPU choice) are visible in stored results. Default: none."""
        return {}

    def client_state(self) -> ClientState:
        """What this client keeps until its next round: its ``local_prefixes`` entries by default."""
        tensors = {k: v.detach().clone() for k, v in self.state_dict().items() if self._is_local(k)}
        return {"tensors": tensors} if tensors else {}


class _Projector(nn.Module):
    def __init__(self, encoder: nn.Module, projector: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projector

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(self.encoder(x).flatten(1))

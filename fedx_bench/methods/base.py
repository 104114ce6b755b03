"""The method interface every self-supervised method implements, and the client-state contract.

A method is an ``nn.Module`` holding an encoder (the backbone whose features are evaluated), a
projector, and whatever else it needs. The federated loop talks to it only through:

* ``training_step(x1, x2, xr)`` → ``StepOutput`` (its own loss plus the student projections of both
  views and of the optional random batch, which is what the FedX add-on needs);
* ``after_optimizer_step()`` (EMA targets, queues);
* ``on_round_start(round, client_state)`` / ``client_state()`` (per-client persistent state);
* ``shared_state()`` (what the server averages) and ``local_prefixes`` (what it never averages).

FedX (``methods/fedx.py``) wraps any such method without knowing which one it is.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..models import mlp_head


@dataclass
class StepOutput:
    """One local step's result. ``logs`` holds detached scalar tensors (no device sync per step)."""

    loss: Tensor
    z1: Tensor
    z2: Tensor
    zr: Tensor | None = None
    logs: dict[str, Tensor] = field(default_factory=dict)


ClientState = dict[str, Any]
"""Per-client persistent state: tensors (cloned) and plain JSON-able values; checkpointable with torch.save."""


class Method(nn.Module):
    """Base class. Subclasses set ``name``, ``Args`` (a dataclass of hyperparameters) and implement
    ``training_step``. The default encoder/projector layout is backbone → MLP(d→hidden→proj_dim)."""

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
        self.projector = mlp_head(self.feat_dim, proj_hidden, proj_dim)

    # ----------------------------------------------------------------- configuration
    @classmethod
    def parse_args(cls, d: dict[str, Any] | None) -> Any:
        """Validate ``method_args`` against ``cls.Args``; unknown keys and wrong types are ConfigErrors."""
        d = dict(d or {})
        if not dataclasses.is_dataclass(cls.Args):
            if d:
                raise ConfigError(f"method_args: method {cls.name!r} takes no arguments, got {sorted(d)}")
            return cls.Args()
        hints = typing.get_type_hints(cls.Args)
        names = [f.name for f in dataclasses.fields(cls.Args)]
        for k, v in d.items():
            if k not in names:
                hint = difflib.get_close_matches(k, names, n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ConfigError(f"unknown key 'method_args.{k}' for method {cls.name!r}{extra}")
            tp = hints[k]
            if tp is float and isinstance(v, int) and not isinstance(v, bool):
                d[k] = float(v)
            elif tp in (int, float, bool, str) and not isinstance(d[k], tp):
                raise ConfigError(f"method_args.{k}: expected {tp.__name__}, got {v!r}")
        return cls.Args(**d)

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

    def training_step(self, x1: Tensor, x2: Tensor, xr: Tensor | None = None) -> StepOutput:
        raise NotImplementedError

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


def frozen_copy(module: nn.Module) -> nn.Module:
    """Deep copy in eval mode with gradients off: the round's frozen teacher."""
    m = copy.deepcopy(module)
    for sub in m.modules():  # a compiled forward would still point at the original module's weights
        if getattr(sub, "_compiled_call_impl", None) is not None:
            sub._compiled_call_impl = None
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def forward_views(method: Method, x1: Tensor, x2: Tensor, xr: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """One forward of ``cat(x1, x2[, xr])`` through ``project``; BN sees the whole concatenated batch (reference)."""
    parts = [x1, x2] if xr is None else [x1, x2, xr]
    z = method.project(torch.cat(parts, dim=0))
    b = x1.shape[0]
    return z[:b], z[b : 2 * b], (z[2 * b :] if xr is not None else None)

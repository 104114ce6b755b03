"""FedU (Zhuang et al., ICCV 2021): FedBYOL plus the divergence-aware predictor update, DAPU (spec §5.5).

Everything in ``byol.py`` applies (online network averaged and replaced every round, EMA target kept on
the client). DAPU, as implemented here:

* At ``on_round_start`` the received global encoder's conv weights are snapshotted (W_before).
* ``client_state()`` (called by the loop after local training) computes
  d = mean over the encoder's conv weight tensors of ‖W_after − W_before‖₂ and stores d (a float,
  ``dapu_divergence``) and a copy of the local predictor (``dapu_predictor``) next to the base state's
  ``tensors``. Conv tensors are found by module type (``nn.Conv1d/2d/3d``), not by EasyFL's ``"conv" in
  name`` test, so backbones whose conv layers are not named ``conv*`` (CNN4) are covered too.
* At the client's next ``on_round_start``: if d < μ (``dapu_threshold``, 0.4 as EasyFL) the global
  predictor just loaded is kept, otherwise the local predictor (with its BN statistics) is restored. A
  client's first participation uses the global predictor. The decision is kept in ``last_dapu_choice``
  ("global"/"local") and d in ``last_dapu_divergence``.
* With FedX, its extra head h^m is aggregated like every other shared parameter (it does not follow DAPU).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import METHODS
from .base import ClientState
from .byol import BYOL
from .specs import FedUArgs

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def conv_weights(module: nn.Module) -> list[Tensor]:
    """The weight tensors of every conv layer in ``module``, in module order."""
    return [m.weight for m in module.modules() if isinstance(m, _CONV_TYPES)]


@METHODS.register("fedu")
class FedU(BYOL):
    """FedU; every choice is listed in the module docstring."""

    name = "fedu"
    Args = FedUArgs

    def __init__(
        self, backbone: nn.Module, args: FedUArgs, proj_hidden: int = 256, proj_dim: int = 256
    ) -> None:
        super().__init__(backbone, args, proj_hidden, proj_dim)
        self._conv_before: list[Tensor] | None = None  # not in state_dict: rebuilt every round start
        self.last_dapu_choice: str | None = None
        self.last_dapu_divergence: float | None = None
        self._trained_divergence: float | None = None  # d after this client's local training (client_state)

    def encoder_divergence(self) -> float:
        """d = mean over conv weight tensors of ‖W_now − W_round_start‖₂."""
        if self._conv_before is None:
            raise RuntimeError("FedU: on_round_start() must run before the divergence can be measured")
        now = conv_weights(self.encoder)
        with torch.no_grad():
            dists = [torch.linalg.vector_norm(a - b) for a, b in zip(now, self._conv_before, strict=True)]
        return float(torch.stack(dists).mean()) if dists else 0.0

    def on_round_start(self, round_idx: int, client_state: ClientState | None) -> None:
        super().on_round_start(round_idx, client_state)
        self._conv_before = [w.detach().clone() for w in conv_weights(self.encoder)]
        self._trained_divergence = None
        d = client_state.get("dapu_divergence") if client_state else None
        if d is None or d < self.args.dapu_threshold:
            self.last_dapu_choice = "global"  # keep the predictor load_shared_state just installed
        else:
            assert client_state is not None
            self.predictor.load_state_dict(client_state["dapu_predictor"])
            self.last_dapu_choice = "local"
        self.last_dapu_divergence = None if d is None else float(d)

    def round_stats(self) -> dict[str, float]:
        """``dapu_local_predictor``: 1 when this client kept its local predictor this round (d ≥ μ), 0 when it
        used the global one; ``dapu_divergence``: d measured after this round's local training."""
        out: dict[str, float] = {}
        if self.last_dapu_choice is not None:
            out["dapu_local_predictor"] = float(self.last_dapu_choice == "local")
        if self._trained_divergence is not None:
            out["dapu_divergence"] = self._trained_divergence
        return out

    def client_state(self) -> ClientState:
        state = super().client_state()
        if self._conv_before is not None:
            state["dapu_divergence"] = self._trained_divergence = self.encoder_divergence()
            state["dapu_predictor"] = {k: v.detach().clone() for k, v in self.predictor.state_dict().items()}
        return state

"""FedEMA (Zhuang, Wen & Zhang, "Divergence-aware Federated Self-Supervised Learning", ICLR 2022).

FedBYOL (``byol.py``: EMA target kept on the client, online network averaged by the server) whose clients do not
replace their local online network by the received global one but move it towards it by a divergence-aware EMA:

    W_k^r = μ·W_k^{r−1} + (1 − μ)·W_g^r,    μ = min(λ·‖W_g^r − W_k^{r−1}‖, 1)

W_k^{r−1} is the online network the client trained in its previous round, W_g^r the global one just received.
A client far from the global model (large divergence) keeps more of its own model; μ = 0 keeps the global model,
μ = 1 the local one. λ comes from the paper's autoscaler, λ = τ / ‖W_g − W_k‖ measured once per client, at its
first EMA update, so μ = τ in that round (``tau``, 0.7 as the authors' example run); ``scaler`` sets a constant
λ instead (the paper's fixed-λ variant). Predictor: updated by the same EMA with the same μ (the paper's
"predictor also by EMA"; in the authors' code, their dynamic-DAPU option reduces to exactly this).

Choices where the paper is silent or the authors' code differs (README, "Methods"):

* What is mixed: the online encoder (backbone + projector) and the predictor, parameters only; BN running
  statistics are the received global ones (the authors' EMA helper moves parameters only). The EMA target stays
  the client's own (BYOL's behaviour here), initialised from the global online network at first participation.
* ‖·‖: the mean over the backbone's conv weight tensors of the L2 distance (the measure FedU uses here and the
  authors' code uses, ``fedu.conv_weights``), between the received global model and the client's previous trained
  one as the paper writes it (the authors' code measures how far the previous local training moved the model); a
  backbone without conv layers uses all its ≥2-d weights.
* λ is measured at the client's second participation from the then-received global model, i.e. the paper's
  ‖W_g^{r+1} − W_k^r‖ when the client also takes part in round r + 1 (always, with full participation). If that
  divergence is exactly 0 the update is a no-op (μ = 0) and λ is measured at the next round instead.
* First participation: the global online network and predictor as received (no local model yet).
* With FedX, its extra head h^m is aggregated and replaced like every other shared parameter (no EMA), and its
  teacher is the global model as received (before the EMA), as for every method.
* Kept on the client between rounds (checkpointed): the EMA target, the trained online network and predictor
  (``fedema_online``), and λ (``fedema_scaler``). This is a whole online network per client in memory.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import METHODS
from .base import ClientState
from .byol import BYOL
from .fedu import conv_weights
from .momentum import blend_
from .specs import FedEMAArgs

_MIXED = ("encoder", "projector", "predictor")  # the online network and predictor, mixed by the EMA


def divergence_weights(module: nn.Module) -> list[Tensor]:
    """The tensors whose distance defines the divergence: conv weights, else every ≥2-d parameter."""
    ws = conv_weights(module)
    return ws if ws else [p for p in module.parameters() if p.ndim >= 2]


def ema_mu(divergence: float, scaler: float | None) -> float:
    """μ = min(λ·d, 1); 0 (keep the global model) while λ is unknown."""
    if scaler is None:
        return 0.0
    return min(scaler * divergence, 1.0)


@METHODS.register("fedema")
class FedEMA(BYOL):
    """FedEMA; every choice is listed in the module docstring."""

    name = "fedema"
    Args = FedEMAArgs

    def __init__(
        self, backbone: nn.Module, args: FedEMAArgs, proj_hidden: int = 256, proj_dim: int = 256
    ) -> None:
        super().__init__(backbone, args, proj_hidden, proj_dim)
        self._scaler: float | None = None  # this client's λ (restored from its state every round start)
        self.last_mu: float | None = None
        self.last_divergence: float | None = None

    def _mixed_parameters(self) -> dict[str, nn.Parameter]:
        return {f"{m}.{n}": p for m in _MIXED for n, p in getattr(self, m).named_parameters()}

    def local_divergence(self, local: dict[str, Tensor]) -> float:
        """‖W_g − W_k‖: mean L2 distance of the divergence tensors between the current (global) encoder and the
        client's stored one."""
        names = {id(p): n for n, p in self.encoder.named_parameters()}
        ws = divergence_weights(self.encoder)
        if not ws:
            return 0.0
        with torch.no_grad():
            d = [torch.linalg.vector_norm(w - local["encoder." + names[id(w)]]) for w in ws]
        return float(torch.stack(d).mean())

    def on_round_start(self, round_idx: int, client_state: ClientState | None) -> None:
        super().on_round_start(round_idx, client_state)  # BYOL: this client's target (or init from the global)
        self.last_mu = self.last_divergence = None
        self._scaler = client_state.get("fedema_scaler") if client_state else None
        local = client_state.get("fedema_online") if client_state else None
        if local is None:
            return  # first participation: the global online network and predictor as received
        d = self.local_divergence(local)
        if self.args.scaler is not None:
            self._scaler = float(self.args.scaler)
        elif self._scaler is None and d > 0:
            self._scaler = self.args.tau / d  # the autoscaler: μ = τ at this first EMA update
        mu = ema_mu(d, self._scaler)
        blend_(self._mixed_parameters(), local, mu)
        self.last_mu, self.last_divergence = mu, d

    def round_stats(self) -> dict[str, float]:
        """``fedema_mu`` (weight of the local model), ``fedema_divergence`` and ``fedema_scaler`` (λ) of this round's
        EMA update; nothing at a client's first participation."""
        if self.last_mu is None:
            return {}
        out = {"fedema_mu": self.last_mu, "fedema_divergence": float(self.last_divergence or 0.0)}
        if self._scaler is not None:
            out["fedema_scaler"] = self._scaler
        return out

    def client_state(self) -> ClientState:
        state = super().client_state()
        state["fedema_online"] = {k: p.detach().clone() for k, p in self._mixed_parameters().items()}
        state["fedema_scaler"] = self._scaler
        return state

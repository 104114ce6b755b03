"""FedX: local and global cross knowledge distillation as one add-on around any base method (spec §2).

Per local step, with the base method's student projections z1, z2 (two views) and zr (random batch)
and the frozen round-start global model G:

* local contrastive  — the base method's own loss (NT-Xent for SimCLR, BYOL's regression, ...);
* local relational   — ``relational_kl(z1, z2; anchors=zr, τ, ts)``;
* global contrastive — ``nt_xent(h(z1), G(x2), τ)``;
* global relational  — ``relational_kl(h(z1), h(z2); anchors=G(xr), τ, tt)``;

where h is FedX's extra head (aggregated like every other shared parameter). All weights are 1, as in
the reference. The teacher only forwards the second view and the random batch: the reference also
forwards the first view and throws the result away.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..losses import nt_xent, relational_kl
from ..models import mlp_head
from .base import ClientState, LossTerms, Method, StepOutput, Views
from .fedx_config import FEDX_VARIANTS, FedXConfig
from .momentum import frozen_copy


class FedX(Method):
    """Wraps ``base`` and adds FedX's terms. Every public hook of ``Method`` goes to the base (tested in
    ``tests/test_method_seams.py``), except ``shared_state``/``load_shared_state``, which work on this module's
    own state (the base's entries under ``base.``, plus FedX's head)."""

    uses_random_batch = True

    def __init__(self, base: Method, cfg: FedXConfig) -> None:
        nn.Module.__init__(self)
        self.base = base
        self.cfg = cfg
        self.terms = dict(FEDX_VARIANTS[cfg.variant])
        self.name = f"{base.name}+{cfg.variant}"  # type: ignore[misc]
        self.args = base.args
        self.feat_dim = base.feat_dim
        self.proj_dim = base.proj_dim
        needs_teacher = self.terms["global_contrastive"] or self.terms["global_relational"]
        self.head: nn.Module | None = (
            mlp_head(base.proj_dim, cfg.head_hidden, base.proj_dim) if (self.terms["head"] and needs_teacher) else None
        )
        self._needs_teacher = needs_teacher
        self._teacher: list[nn.Module] = []  # a list keeps the teacher out of state_dict and parameters()
        self.local_prefixes = tuple("base." + p for p in base.local_prefixes)  # type: ignore[misc]
        # the add-on asks for the random batch (the loop then draws it) only when a relational term uses it
        self.uses_random_batch = self.terms["local_relational"] or self.terms["global_relational"]  # type: ignore[misc]

    @property
    def encoder(self) -> nn.Module:  # type: ignore[override]
        return self.base.encoder

    # ----------------------------------------------------------------- hooks forwarded to the base
    def features(self, x: Tensor) -> Tensor:
        return self.base.features(x)

    def project(self, x: Tensor) -> Tensor:
        return self.base.project(x)

    def student_network(self) -> nn.Module:
        return self.base.student_network()

    def prepare_local_training(self, images: Tensor, transform: Callable[[Tensor], Tensor]) -> None:
        self.base.prepare_local_training(images, transform)

    def client_state(self) -> ClientState:
        return self.base.client_state()

    def round_stats(self) -> dict[str, float]:
        return self.base.round_stats()

    def after_optimizer_step(self) -> None:
        self.base.after_optimizer_step()

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = self.base.trainable_parameters()
        if self.head is not None:
            params += [p for p in self.head.parameters() if p.requires_grad]
        return params

    def on_round_start(self, round_idx: int, client_state: ClientState | None) -> None:
        # The teacher is the global model exactly as received (before any base hook changes local parts).
        if self._needs_teacher:
            self.set_teacher(frozen_copy(self.base.student_network()))
        self.base.on_round_start(round_idx, client_state)

    def set_teacher(self, teacher: nn.Module | None) -> None:
        """Install the frozen global teacher (normally done by ``on_round_start``)."""
        self._teacher = [] if teacher is None else [teacher]

    # ----------------------------------------------------------------- the step: the base's, plus FedX's terms
    def forward_views(self, x1: Tensor, x2: Tensor, xr: Tensor | None = None) -> Views:
        return self.base.forward_views(x1, x2, xr if self.uses_random_batch else None)

    def compute_loss(self, v: Views) -> LossTerms:
        loss, logs = self.base.compute_loss(v)
        return self._add_terms(loss, logs, v)

    def training_step(self, x1: Tensor, x2: Tensor, xr: Tensor | None = None) -> StepOutput:
        # the base's own step (its shared forward, with the random batch when a relational term uses it, and its
        # loss), so that a base that instruments training_step is still called
        xr = xr if self.uses_random_batch else None
        out = self.base.training_step(x1, x2, xr)
        loss, logs = self._add_terms(out.loss, out.logs, Views(x1, x2, xr, out.z1, out.z2, out.zr))
        return StepOutput(loss=loss, z1=out.z1, z2=out.z2, zr=out.zr, logs=logs)

    def _add_terms(self, loss: Tensor, base_logs: dict[str, Tensor], v: Views) -> LossTerms:
        """The base's loss plus FedX's relational and global terms on the shared forward ``v``."""
        t = self.cfg.temperature
        logs = dict(base_logs)
        if self.terms["local_relational"]:
            l_rl = relational_kl(v.z1, v.z2, v.zr, t, self.cfg.ts)
            loss = loss + l_rl
            logs["loss_local_relational"] = l_rl.detach()
        if self._needs_teacher:
            if not self._teacher:
                raise RuntimeError("FedX teacher not set: call on_round_start() before training_step()")
            teacher = self._teacher[0]
            with torch.no_grad():
                tin = v.x2 if (v.xr is None or not self.terms["global_relational"]) else torch.cat([v.x2, v.xr], dim=0)
                zg = teacher(tin)
                zg2 = zg[: v.x2.shape[0]]
                zgr = zg[v.x2.shape[0] :]
            p1 = self.head(v.z1) if self.head is not None else v.z1
            if self.terms["global_contrastive"]:
                l_gc = nt_xent(p1, zg2, t)
                loss = loss + l_gc
                logs["loss_global_contrastive"] = l_gc.detach()
            if self.terms["global_relational"]:
                p2 = self.head(v.z2) if self.head is not None else v.z2
                l_gr = relational_kl(p1, p2, zgr, t, self.cfg.tt)
                loss = loss + l_gr
                logs["loss_global_relational"] = l_gr.detach()
        logs["loss"] = loss.detach()
        return loss, logs


def wrap_fedx(base: Method, cfg: FedXConfig) -> Method:
    """Apply the FedX add-on to a base method (identity when ``cfg.enabled`` is false)."""
    return FedX(base, cfg) if cfg.enabled else base

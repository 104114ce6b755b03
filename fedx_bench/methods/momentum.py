"""Copies of networks that the optimiser never moves: frozen teachers, momentum/EMA targets, and their updates.

One home for what MoCo's key network, BYOL's (FedU's, FedEMA's) target, FedEMA's local/global mix and FedX's
round teacher share.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


def frozen_copy(module: nn.Module, eval_mode: bool = True) -> nn.Module:
    """A deep copy with gradients off. ``eval_mode``: FedX's round teacher (BN on running statistics);
    ``False`` keeps the source's mode, for momentum/EMA networks that the method updates by hand and runs in
    training mode."""
    m = copy.deepcopy(module)
    for sub in m.modules():  # a compiled forward would still point at the original module's weights
        if getattr(sub, "_compiled_call_impl", None) is not None:
            sub._compiled_call_impl = None
    if eval_mode:
        m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


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


@torch.no_grad()
def blend_(params: dict[str, Tensor], other: dict[str, Tensor], weight: float) -> None:
    """p ← (1 − weight)·p + weight·other[name] for every named tensor (FedEMA's move towards the local model)."""
    for k, p in params.items():
        p.mul_(1.0 - weight).add_(other[k], alpha=weight)

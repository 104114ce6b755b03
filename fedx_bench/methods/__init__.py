"""Methods: one module per base method, plus the FedX add-on that wraps any of them.

``resolve_method(name)`` accepts a registered name (``simclr``), a plug-in ``pkg.module:Class``, or a
name published by another package under the ``fedx_bench.methods`` entry-point group.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

import torch

from ..config import RunConfig
from ..errors import ConfigError
from ..models import build_backbone
from ..registry import METHODS
from . import byol, fedema, fedu, moco, protocl, simclr, simsiam  # noqa: F401  (registers)
from .base import ClientState, Method, StepOutput, forward_views, frozen_copy
from .fedx import FedX, wrap_fedx

__all__ = [
    "ClientState",
    "FedX",
    "Method",
    "StepOutput",
    "build_method",
    "forward_views",
    "frozen_copy",
    "resolve_method",
    "wrap_fedx",
]

_loaded_entry_points = False


def _load_entry_points() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for ep in entry_points(group="fedx_bench.methods"):
        if ep.name not in METHODS:
            METHODS.add(ep.name, ep.load(), display=ep.name, description=f"plug-in from {ep.value}")


def resolve_method(name: str) -> type[Method]:
    """Find a method class by registry name, ``module:Class`` path, or entry point."""
    if ":" in name:
        mod_name, _, cls_name = name.partition(":")
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:
            raise ConfigError(f"method {name!r}: cannot import module {mod_name!r} ({e})") from None
        cls = getattr(mod, cls_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise ConfigError(f"method {name!r}: {cls_name!r} is not a fedx_bench.methods.Method subclass")
        return cls
    if name not in METHODS:
        _load_entry_points()
    return METHODS.get(name)


def display_name(name: str) -> str:
    """Paper-style name, e.g. ``simclr`` → ``FedSimCLR``; ``method@aggregator`` (a report's key for a run with a
    non-default ``federation.aggregator``) → ``FedSimCLR + L-DAWA``."""
    if "@" in name:
        from ..registry import AGGREGATORS, load_builtins

        load_builtins()
        method, _, agg = name.rpartition("@")
        agg_name = AGGREGATORS.meta(agg).get("display", agg) if agg in AGGREGATORS else agg
        return f"{display_name(method)} + {agg_name}"
    if name in METHODS:
        return METHODS.meta(name).get("display", name)
    return name.rsplit(":", 1)[-1]


def build_method(cfg: RunConfig, in_channels: int) -> Method:
    """Build the (optionally FedX-wrapped) method for a run. Seeds torch first so that the backbone's
    initial weights depend only on the seed and backbone, not on the method (same random-init encoder)."""
    torch.manual_seed(cfg.seed)
    backbone = build_backbone(cfg.model.backbone, in_channels, cfg.model.width)
    cls = resolve_method(cfg.method)
    base = cls(backbone, cls.parse_args(cfg.method_args), cfg.model.proj_hidden, cfg.model.proj_dim)
    return wrap_fedx(base, cfg.fedx)

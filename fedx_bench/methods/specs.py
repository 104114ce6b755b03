"""What a method name means, without importing torch: each built-in method's argument schema (its ``Args``
dataclass: names, types, defaults, value checks), display name and module, declared in ``METHODS``; and the
resolution of a name (registered, declared, ``pkg.module:Class`` or an entry point) to its schema or class.

Config validation reads only this module for built-in methods. A plug-in's schema is its class's ``Args``,
known once its module is imported (``module:Class`` and entry points import it; a plug-in that calls
``METHODS.register`` registers it at import). Types are checked by ``config``'s typed conversion
(``parse_method_args``); the ``__post_init__`` checks here are the values that cannot work.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from ..errors import ConfigError
from ..registry import AGGREGATORS, METHODS


@dataclass
class SimCLRArgs:
    temperature: float = 0.1  # τ of the reference code


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


@dataclass
class ProtoCLArgs(MoCoArgs):
    num_clusters: list[int] = field(default_factory=lambda: [10, 20])
    kmeans_iters: int = 10
    proto_weight: float = 1.0
    warmup_rounds: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.num_clusters or any(k < 1 for k in self.num_clusters):
            raise ConfigError(
                f"method_args.num_clusters: expected a non-empty list of positive integers, got {self.num_clusters!r}"
            )
        if self.kmeans_iters < 1:
            raise ConfigError(f"method_args.kmeans_iters: must be >= 1, got {self.kmeans_iters}")
        if not self.proto_weight >= 0:
            raise ConfigError(f"method_args.proto_weight: must be finite and >= 0, got {self.proto_weight}")
        if self.warmup_rounds < 0:
            raise ConfigError(f"method_args.warmup_rounds: must be >= 0, got {self.warmup_rounds}")


@dataclass
class BYOLArgs:
    ema: float = 0.99  # target decay τ (EasyFL)
    pred_hidden: int | None = None  # None: the model config's proj_hidden (byol.py's docstring)

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema <= 1.0:
            raise ConfigError(f"method_args.ema: must be in [0, 1], got {self.ema}")
        if self.pred_hidden is not None and self.pred_hidden < 1:
            raise ConfigError(f"method_args.pred_hidden: expected a positive integer or null, got {self.pred_hidden!r}")


@dataclass
class FedUArgs(BYOLArgs):
    dapu_threshold: float = 0.4  # μ (EasyFL default)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dapu_threshold < 0:
            raise ConfigError(f"method_args.dapu_threshold: must be >= 0, got {self.dapu_threshold}")


@dataclass
class FedEMAArgs(BYOLArgs):
    tau: float = 0.7  # autoscaler target: μ at a client's first EMA update (the authors' example run)
    scaler: float | None = None  # a constant λ instead of the autoscaler (None: autoscaler)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.tau <= 1:
            raise ConfigError(f"method_args.tau: must be in (0, 1], got {self.tau!r}")
        if self.scaler is not None and self.scaler < 0:
            raise ConfigError(f"method_args.scaler: expected a number >= 0 or null, got {self.scaler!r}")


@dataclass
class SimSiamArgs:
    pred_hidden: int | None = None  # None: model.proj_dim // 4 (SimSiam's bottleneck ratio)

    def __post_init__(self) -> None:
        if self.pred_hidden is not None and self.pred_hidden < 1:
            raise ConfigError(f"method_args.pred_hidden: expected a positive integer or null, got {self.pred_hidden!r}")


def _declare(name: str, args: type, display: str, description: str) -> None:
    METHODS.declare(name, f"fedx_bench.methods.{name}", args=args, display=display, description=description)


_declare("simclr", SimCLRArgs, "FedSimCLR", "SimCLR (NT-Xent), FedAvg of all parameters")
_declare("moco", MoCoArgs, "FedMoCo", "MoCo v2; per-client queue, key network reset to the global query network")
_declare("byol", BYOLArgs, "FedBYOL", "BYOL; EMA target kept on each client, online network + predictor averaged")
_declare("fedu", FedUArgs, "FedU", "BYOL + divergence-aware predictor update (DAPU, mu = dapu_threshold)")
_declare("protocl", ProtoCLArgs, "FedProtoCL",
         "PCL re-implementation (InfoNCE + ProtoNCE, per-client k-means); variant UNKNOWN")
_declare("fedema", FedEMAArgs, "FedEMA",
         "BYOL + divergence-aware EMA of the local online network towards the global one (tau autoscaler)")
_declare("simsiam", SimSiamArgs, "FedSimSiam",
         "SimSiam; stop-gradient + predictor, no momentum encoder; everything averaged")


# --------------------------------------------------------------------------- name resolution

_loaded_entry_points = False


def _load_entry_points() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for ep in entry_points(group="fedx_bench.methods"):
        if ep.name not in METHODS:
            METHODS.add(ep.name, ep.load(), display=ep.name, description=f"plug-in from {ep.value}")


def resolve_method(name: str) -> Any:
    """The method class of a registry name, ``module:Class`` path, or entry point (imports its module)."""
    if ":" in name:
        from .base import Method

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


def method_schema(name: str) -> type:
    """The ``Args`` class of method ``name``: a built-in's from its declaration (no import), a plug-in's from its
    class (importing the plug-in's module)."""
    if ":" not in name and METHODS.is_declared(name):
        return METHODS.meta(name, load=False)["args"]
    return resolve_method(name).Args


def display_name(name: str) -> str:
    """Paper-style name, e.g. ``simclr`` → ``FedSimCLR``; ``method@aggregator`` (a report's key for a run with a
    non-default ``federation.aggregator``) → ``FedSimCLR + L-DAWA``. Imports nothing for built-in names."""
    if "@" in name:
        method, _, agg = name.rpartition("@")
        agg_name = AGGREGATORS.meta(agg, load=False).get("display", agg) if agg in AGGREGATORS else agg
        return f"{display_name(method)} + {agg_name}"
    if name in METHODS:
        return METHODS.meta(name, load=False).get("display", name)
    return name.rsplit(":", 1)[-1]

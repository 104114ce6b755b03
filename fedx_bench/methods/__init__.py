"""Methods: one module per base method, plus the FedX add-on that wraps any of them.

Importing this package imports no torch: the built-in methods are declared with their argument schemas in
``specs`` (what config validation reads) and their modules load on first use (``METHODS.get``, or an attribute
of this package such as ``Method``). ``resolve_method(name)`` accepts a registered name (``simclr``), a plug-in
``pkg.module:Class``, or a name published by another package under the ``fedx_bench.methods`` entry-point group.
The runner builds a run's method (``runner.build_method``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .fedx_config import FEDX_VARIANTS, FedXConfig, describe_terms
from .specs import display_name, method_schema, resolve_method

_LAZY = {  # name -> submodule (these import torch)
    "ClientState": "base",
    "Method": "base",
    "StepOutput": "base",
    "Views": "base",
    "FedX": "fedx",
    "wrap_fedx": "fedx",
    "frozen_copy": "momentum",
}

__all__ = [
    "FEDX_VARIANTS",
    "ClientState",
    "FedX",
    "FedXConfig",
    "Method",
    "StepOutput",
    "Views",
    "describe_terms",
    "display_name",
    "frozen_copy",
    "method_schema",
    "resolve_method",
    "wrap_fedx",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

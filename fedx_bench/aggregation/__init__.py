"""Server-side aggregation rules, one module each, registered in ``AGGREGATORS`` (``federation.aggregator``).

``fedavg`` (the default) and ``ldawa`` are built in; ``fedx-bench list aggregators`` lists them. A new rule is
a function with the signature of :data:`~fedx_bench.aggregation.base.Aggregator`, decorated with
``@AGGREGATORS.register("name", description=...)``.
"""

from __future__ import annotations

from ..registry import AGGREGATORS
from . import fedavg as _fedavg_module  # noqa: F401  (registers)
from . import ldawa as _ldawa_module  # noqa: F401  (registers)
from .base import Aggregate, Aggregator
from .fedavg import fedavg
from .ldawa import layer_cosines, ldawa

__all__ = ["AGGREGATORS", "Aggregate", "Aggregator", "fedavg", "layer_cosines", "ldawa"]

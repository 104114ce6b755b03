"""One small registry type used for methods, datasets, backbones, evaluation protocols and aggregators.

Modelled on timm's ``register_model``/``list_models``: a decorator registers a factory under a
name, ``get`` looks it up with a helpful error, ``names`` lists what is there.

Built-in entries whose modules import torch are also *declared* (name, module, light metadata) in torch-free
code: here for backbones, protocols and aggregators, in ``methods/specs.py`` for methods (with each method's
argument schema). Validating a config checks names against the declarations (``check``) and imports nothing;
``get`` imports a declared entry's module on first use. A module's registration must agree with its declaration
(``tests/test_method_seams.py`` checks that every built-in is declared).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping from string keys to objects (classes or factories), plus declared (not yet imported)
    entries. ``declared_by``: a torch-free module whose import declares the built-in entries (imported on the
    first lookup)."""

    def __init__(self, kind: str, declared_by: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._modules: dict[str, str] = {}  # declared name -> the module whose import registers it
        self._declared_by = declared_by

    def _declarations(self) -> None:
        if self._declared_by is not None:
            mod, self._declared_by = self._declared_by, None
            importlib.import_module(mod)

    def declare(self, name: str, module: str, **meta: Any) -> None:
        """Promise that importing ``module`` registers ``name``; ``meta`` is known without importing it."""
        self._modules[name] = module
        self._meta.setdefault(name, {}).update(meta)

    def register(self, name: str | None = None, **meta: Any) -> Callable[[T], T]:
        """Decorator: ``@METHODS.register("simclr")`` registers the decorated object."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            declared = self._meta.get(key, {}) if key in self._modules else {}
            clash = {k for k in meta if k in declared and declared[k] != meta[k]}
            if clash:
                raise ValueError(f"{self.kind} {key!r}: registration disagrees with its declaration on {sorted(clash)}")
            self._items[key] = obj
            self._meta[key] = {**declared, **meta}
            return obj

        return deco

    def add(self, name: str, obj: T, **meta: Any) -> None:
        """Register ``obj`` under ``name`` (non-decorator form)."""
        self.register(name, **meta)(obj)

    def remove(self, name: str) -> None:
        """Unregister ``name`` (a toy entry a test or notebook added); unknown names raise the ``get`` error."""
        self.get(name)
        self._items.pop(name)
        self._meta.pop(name, None)

    def check(self, name: str) -> None:
        """Raise the ``get`` error if ``name`` is neither registered nor declared; imports nothing."""
        self._declarations()
        if name not in self._items and name not in self._modules:
            hint = difflib.get_close_matches(name, self._known(), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"unknown {self.kind} {name!r}{extra}; known: {', '.join(self._known())}")

    def get(self, name: str) -> T:
        """Return the entry called ``name`` (importing its declared module) or raise a ConfigError listing close
        matches."""
        self.check(name)
        if name not in self._items:
            importlib.import_module(self._modules[name])
            if name not in self._items:
                raise RuntimeError(f"{self.kind} {name!r}: module {self._modules[name]} did not register it")
        return self._items[name]

    def meta(self, name: str, load: bool = True) -> dict[str, Any]:
        """Free-form metadata given at registration (description, version, ...). ``load=False``: only what is
        known without importing the entry's module (a declared entry's declaration)."""
        if load:
            self.get(name)
        else:
            self.check(name)
        return dict(self._meta.get(name, {}))

    def is_declared(self, name: str) -> bool:
        """Whether ``name`` is a declared (built-in) entry."""
        self._declarations()
        return name in self._modules

    def load_all(self) -> None:
        """Import the module of every declared entry (idempotent)."""
        self._declarations()
        for name in self._modules:
            self.get(name)

    def _known(self) -> list[str]:
        return sorted(set(self._items) | set(self._modules))

    def names(self) -> list[str]:
        """Sorted list of registered and declared names."""
        self._declarations()
        return self._known()

    def __contains__(self, name: object) -> bool:
        self._declarations()
        return name in self._items or name in self._modules

    def __len__(self) -> int:
        return len(self.names())


METHODS: Registry[Any] = Registry("method", declared_by="fedx_bench.methods.specs")
DATASETS: Registry[Any] = Registry("dataset", declared_by="fedx_bench.data")  # the loaders import no torch
BACKBONES: Registry[Any] = Registry("backbone")
EVALUATIONS: Registry[Any] = Registry("evaluation protocol")
AGGREGATORS: Registry[Any] = Registry("aggregator")

# Torch-free declarations of the built-ins whose modules import torch (see the module docstring).
for _name in ("resnet18", "cnn4"):
    BACKBONES.declare(_name, "fedx_bench.models")
for _name in ("linear_probe", "knn", "semi_supervised", "angle"):
    EVALUATIONS.declare(_name, "fedx_bench.evaluation")
AGGREGATORS.declare("fedavg", "fedx_bench.aggregation", display="FedAvg")
AGGREGATORS.declare("ldawa", "fedx_bench.aggregation", display="L-DAWA")


def load_builtins() -> None:
    """Import the built-in modules so that their ``register`` calls have run (idempotent)."""
    for mod in ("data", "models", "methods", "evaluation", "aggregation"):
        importlib.import_module(f"fedx_bench.{mod}")
    for reg in (METHODS, DATASETS, BACKBONES, EVALUATIONS, AGGREGATORS):
        reg.load_all()

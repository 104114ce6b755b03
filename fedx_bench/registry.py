"""One small registry type used for methods, datasets, backbones, evaluation protocols and aggregators.

Modelled on timm's ``register_model``/``list_models``: a decorator registers a factory under a
name, ``get`` looks it up with a helpful error, ``names`` lists what is there.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping from string keys to objects (classes or factories)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str | None = None, **meta: Any) -> Callable[[T], T]:
        """Decorator: ``@METHODS.register("simclr")`` registers the decorated object."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = obj
            self._meta[key] = meta
            return obj

        return deco

    def add(self, name: str, obj: T, **meta: Any) -> None:
        """Register ``obj`` under ``name`` (non-decorator form)."""
        self.register(name, **meta)(obj)

    def get(self, name: str) -> T:
        """Return the entry called ``name`` or raise a ConfigError listing close matches."""
        if name not in self._items:
            hint = difflib.get_close_matches(name, self._items, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"unknown {self.kind} {name!r}{extra}; known: {', '.join(sorted(self._items))}")
        return self._items[name]

    def meta(self, name: str) -> dict[str, Any]:
        """Free-form metadata given at registration (description, version, ...)."""
        self.get(name)
        return dict(self._meta[name])

    def names(self) -> list[str]:
        """Sorted list of registered names."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)


METHODS: Registry[Any] = Registry("method")
DATASETS: Registry[Any] = Registry("dataset")
BACKBONES: Registry[Any] = Registry("backbone")
EVALUATIONS: Registry[Any] = Registry("evaluation protocol")
AGGREGATORS: Registry[Any] = Registry("aggregator")


def load_builtins() -> None:
    """Import the built-in modules so that their ``register`` calls have run (idempotent)."""
    import importlib

    for mod in ("data", "models", "methods", "evaluation", "aggregation"):
        importlib.import_module(f"fedx_bench.{mod}")

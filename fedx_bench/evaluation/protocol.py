"""The protocol interface: an evaluation protocol is one ``Protocol`` entry of ``EVALUATIONS``.

An entry says when it runs (``schedule``: ``per_round`` — on the global model at the evaluated rounds, and/or
hooked into the federated loop — or ``final``, once on the final global model), what it computes (``metrics``,
``compute``), and its version (``id`` = ``name@version``, recorded in ``spec.json`` and ``eval.json``). The runner
loops over ``cfg.eval.protocols`` and calls the entry's hooks; a protocol never sees the runner, only a context:
``EvalContext`` for one evaluation of one model, ``RunContext`` for the whole run. A new protocol is one file that
subclasses ``Protocol`` and calls ``register_protocol`` on an instance, imported from ``evaluation/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..registry import EVALUATIONS
from .features import extract_features

PER_ROUND = "per_round"
FINAL = "final"
SCHEDULES = (PER_ROUND, FINAL)


@dataclass
class EvalContext:
    """One evaluation of ``model`` (the global model at ``round``; 0 = the random-init encoder).

    ``features()`` runs the feature pass over the evaluation splits once, shared by every protocol of this
    evaluation (``extract`` is the feature extractor, injectable so benchmarks can time it)."""

    cfg: Any  # RunConfig
    data: Any  # runner.PreparedData
    device: torch.device
    model: Any  # Method
    round: int
    extract: Callable[..., torch.Tensor] = extract_features
    _features: tuple[torch.Tensor, ...] | None = None

    def features(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(train features, train labels, test features, test labels)`` of the encoder, on ``device``."""
        if self._features is None:
            e, ds = self.cfg.eval, self.data.dataset
            xtr_u8, ytr, xte_u8, yte = self.data.eval_tensors(self.device)
            tr = self.extract(self.model.encoder, xtr_u8, ds.mean, ds.std, e.feature_batch_size, self.device)
            te = self.extract(self.model.encoder, xte_u8, ds.mean, ds.std, e.feature_batch_size, self.device)
            self._features = (tr, ytr, te, yte)
        return self._features  # type: ignore[return-value]


@dataclass
class RunContext:
    """What a protocol sees of one run: its config and data, the trainer (whose ``global_model`` is the model
    being trained, and whose hooks a protocol may set), the run folder (for the protocol's own files), the
    run's resolved augmentation, its partition, and how to rebuild the random-init model. ``state`` holds each
    protocol's per-run state under its name (the protocol entries themselves are shared and stateless)."""

    cfg: Any  # RunConfig
    data: Any  # runner.PreparedData
    device: torch.device
    trainer: Any  # FederatedTrainer
    rd: Any  # store.RunDir
    augment: str = "reference-cifar"
    partition: Any = None  # partition.Partition
    init_model: Callable[[], Any] | None = None
    state: dict[str, Any] = field(default_factory=dict)


class Protocol:
    """A named, versioned evaluation protocol. Subclasses set the class attributes and override the hooks they
    need; every hook has a no-op default. Hooks in run order:

    ``start(run, resumed)`` before the first round (``resumed``: what ``checkpoint_state`` returned, from the
    checkpoint a run resumes from, else None); ``after_round(run, r, rec)`` after every trained round, before
    evaluation (may add fields to the round's ``metrics.jsonl`` record); ``evaluate(ctx)`` at every evaluated
    round of a ``per_round`` protocol (round 0 with ``eval.at_init``, every ``eval.interval``, the last) →
    fields of the round's record; ``checkpoint_state(run)`` after every round; ``finish(run)`` once after the
    last round → the protocol's entry of ``eval.json`` (None: none).
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = ""
    schedule: ClassVar[str] = PER_ROUND
    metrics: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    compute: ClassVar[Callable[..., Any] | None] = None  # the computation itself (e.g. ``linear_probe``)

    @property
    def id(self) -> str:
        """``name@version``: what results record, so reports can say which protocol produced a number."""
        return f"{self.name}@{self.version}"

    def start(self, run: RunContext, resumed: Any) -> None:
        """Before the first round (of this invocation)."""

    def after_round(self, run: RunContext, rnd: int, rec: dict[str, Any]) -> None:
        """After trained round ``rnd``, before it is evaluated."""

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        """Per-round record fields at an evaluated round."""
        return {}

    def checkpoint_state(self, run: RunContext) -> Any:
        """What a resumed run needs back (``start``'s ``resumed``); None: nothing."""
        return None

    def summary(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """``eval.json["metrics"]`` entries computed from the per-round records."""
        return {}

    def finish(self, run: RunContext) -> dict[str, Any] | None:
        """After the last round: the protocol's ``eval.json`` entry (under its name), or None."""
        return None


class RoundMetricProtocol(Protocol):
    """A ``per_round`` protocol whose ``evaluate`` returns ``<name>_<metric>`` for each of ``metrics``; its summary
    is Last / Best / init per metric. Best is the max over evaluated training rounds (test-set-selected, as in the
    reference); init is the random-init encoder (round 0)."""

    def record_keys(self) -> list[str]:
        return [f"{self.name}_{m}" for m in self.metrics]

    def summary(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.record_keys():
            trained = [(r["round"], r[key]) for r in records if r["round"] > 0 and key in r]
            init = [r[key] for r in records if r["round"] == 0 and key in r]
            entry: dict[str, Any] = {"protocol": self.id}
            if init:
                entry["init"] = init[0]
            if trained:
                best_round, best = max(trained, key=lambda t: t[1])
                entry.update(last=trained[-1][1], last_round=trained[-1][0], best=best, best_round=best_round)
            out[key] = entry
        return out


def register_protocol(protocol: Protocol) -> Protocol:
    """Add ``protocol`` to ``EVALUATIONS`` under its name; the registry's metadata is derived from the entry."""
    if protocol.schedule not in SCHEDULES:
        raise ValueError(f"protocol {protocol.name!r}: schedule must be one of {SCHEDULES}, got {protocol.schedule!r}")
    if not protocol.name or not protocol.version:
        raise ValueError(f"protocol {type(protocol).__name__}: needs a name and a version")
    EVALUATIONS.add(protocol.name, protocol, version=protocol.version, metrics=protocol.metrics,
                    schedule=protocol.schedule, description=protocol.description)
    return protocol


def unregister_protocol(name: str) -> None:
    """Remove a protocol registered by ``register_protocol`` (tests and notebooks that add a toy one)."""
    EVALUATIONS.remove(name)


def get_protocol(name: str) -> Protocol:
    """The registered entry ``name``; unknown names raise a ConfigError listing close matches."""
    p = EVALUATIONS.get(name)
    if not isinstance(p, Protocol):
        raise TypeError(f"evaluation protocol {name!r} is registered as {type(p).__name__}, not a Protocol")
    return p


def protocol_id(name: str) -> str:
    """``"linear_probe"`` -> ``"linear_probe@fedx-v1"``; unknown names raise a ConfigError."""
    return get_protocol(name).id


def protocol_versions(names: list[str]) -> dict[str, str]:
    """``{name: version}`` of the given protocols, in the given order (``spec.json``'s ``protocols``)."""
    return {n: get_protocol(n).version for n in names}


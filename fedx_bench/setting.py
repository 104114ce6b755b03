"""Settings are first-class: two runs are comparable only when their ``setting_id`` (and protocol versions) agree.

A run's *setting* is its resolved config without what a method comparison varies (``method``, ``method_args``,
``fedx``, ``seed``, ``federation.aggregator``) and without what never changes numbers (``device``, ``data.root``,
``data.download``, ``data.verify_checksums``, ``perf.channels_last``, ``perf.compile``, ``log``). Everything
else — dataset, source, train_limit, fraction, augmentation, backbone, heads, clients, partition, β, rounds,
local epochs, optimiser,
evaluation protocols and their knobs, ``perf.amp``, ``deterministic`` — is in it. ``setting_id`` is the first 12
hex digits of the sha256 of the canonical JSON of that dict (the same canonical form as the run id).

It works on plain dicts (``spec.json``'s ``config``), so stored runs that predate the field get one at read time by
the same function. Torch-free.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

# Top-level keys a method comparison varies: the setting is everything but these.
# The server's aggregation rule is compared like a method (FedSimCLR + L-DAWA beside FedSimCLR of one setting).
VARYING_KEYS: tuple[str, ...] = ("method", "method_args", "fedx", "seed", "federation.aggregator")
# Dotted keys that never change a run's numbers (placement, paths, memory layout, compilation, integrity checks).
NEUTRAL_KEYS: tuple[str, ...] = ("device", "data.root", "data.download", "data.verify_checksums",
                                 "perf.channels_last", "perf.compile", "log")
EXCLUDED_KEYS: tuple[str, ...] = VARYING_KEYS + NEUTRAL_KEYS
SETTING_ID_LEN = 12

# Short names used in titles and difference lists ("rounds 1≠5"); other keys show their last component.
SHORT_NAMES = {"data.name": "dataset", "data.source": "source", "data.train_limit": "train_limit",
               "data.fraction": "fraction", "data.augment": "augment", "model.backbone": "backbone",
               "model.width": "width", "federation.clients": "clients", "federation.partition": "partition",
               "federation.beta": "β", "federation.rounds": "rounds", "federation.local_epochs": "local_epochs",
               "federation.sample_fraction": "sample_fraction", "optim.lr": "lr", "optim.batch_size": "batch_size",
               "eval.protocols": "protocols", "eval.probe_epochs": "probe_epochs", "eval.interval": "eval.interval"}
# Order in which distinguishing keys are shown in titles (others follow alphabetically).
TITLE_ORDER = ["data.name", "data.source", "data.train_limit", "data.fraction", "model.backbone",
               "federation.clients", "federation.partition", "federation.beta", "federation.rounds",
               "federation.local_epochs"]


def setting_dict(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that defines the setting (a deep copy; ``EXCLUDED_KEYS`` removed)."""
    d = copy.deepcopy(dict(config))
    for key in EXCLUDED_KEYS:
        parts = key.split(".")
        cur: Any = d
        for p in parts[:-1]:
            cur = cur.get(p) if isinstance(cur, dict) else None
        if isinstance(cur, dict):
            cur.pop(parts[-1], None)
    return d


def setting_id(config: Mapping[str, Any]) -> str:
    """12 hex digits identifying the setting of a resolved config (``RunConfig.to_dict()`` or spec.json's
    ``config``): equal for two runs exactly when everything but method, method_args, FedX, seed and the
    number-neutral keys agrees."""
    blob = json.dumps(setting_dict(config), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:SETTING_ID_LEN]


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"federation": {"rounds": 5}}`` → ``{"federation.rounds": 5}`` (lists kept as values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def short_name(key: str) -> str:
    return SHORT_NAMES.get(key, key.split(".")[-1] if key.count(".") == 1 else key)


def fmt_value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        if math.isinf(v):
            return "∞"
        return str(int(v)) if v.is_integer() else f"{v:g}"
    if isinstance(v, list):
        return "[" + ",".join(fmt_value(x) for x in v) + "]"
    return str(v)


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Keys whose values differ between two setting dicts (either side may lack a key): [(dotted key, a, b)]."""
    fa, fb = flatten(a), flatten(b)
    keys = sorted(set(fa) | set(fb), key=_title_sort)
    return [(k, fa.get(k), fb.get(k)) for k in keys if fa.get(k) != fb.get(k)]


def describe_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """``rounds 1≠5, clients 20≠10`` (a's value first)."""
    return ", ".join(f"{short_name(k)} {fmt_value(x)}≠{fmt_value(y)}" for k, x, y in differences(a, b)) or "none"


def nearest(target: Mapping[str, Any], candidates: Mapping[str, Mapping[str, Any]]) -> tuple[str, int] | None:
    """The candidate setting (id → setting dict) with the fewest differing keys: (id, number of keys)."""
    best: tuple[str, int] | None = None
    for sid, cand in candidates.items():
        n = len(differences(target, cand))
        if best is None or n < best[1] or (n == best[1] and sid < best[0]):
            best = (sid, n)
    return best


def _title_sort(key: str) -> tuple[int, str]:
    return (TITLE_ORDER.index(key) if key in TITLE_ORDER else len(TITLE_ORDER), key)


def distinguishing_keys(settings: Iterable[Mapping[str, Any]]) -> list[str]:
    """Dotted keys whose value is not the same in every given setting (title order)."""
    flats = [flatten(s) for s in settings]
    keys = set().union(*flats) if flats else set()
    out = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]
    return sorted(out, key=_title_sort)


def title(setting: Mapping[str, Any], keys: Iterable[str]) -> str:
    """``dataset cifar10 · clients 20 · rounds 4`` for the given distinguishing keys."""
    f = flatten(setting)
    return " · ".join(f"{short_name(k)} {fmt_value(f.get(k))}" for k in keys)

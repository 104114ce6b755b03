"""Typed, validated configuration: one ``RunConfig`` per run, ``SuiteConfig`` = base + grid.

Everything a run does is decided by its ``RunConfig``; its hash is the run id. YAML is validated
into these dataclasses before anything runs: an unknown key, a wrong type or an impossible value is a
``ConfigError`` naming the file and the dotted key.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError

FEDX_VARIANTS: dict[str, dict[str, bool]] = {
    # name: which FedX terms are on (the local contrastive term is always the base method's own loss)
    "fedx": dict(local_relational=True, global_contrastive=True, global_relational=True, head=True),
    "fedx-no-relational": dict(local_relational=False, global_contrastive=True, global_relational=False, head=True),
    "fedx-no-global": dict(local_relational=True, global_contrastive=False, global_relational=False, head=False),
    "fedx-no-head": dict(local_relational=True, global_contrastive=True, global_relational=True, head=False),
    "fedx-local-only-relational": dict(
        local_relational=True, global_contrastive=True, global_relational=False, head=True
    ),
    "fedx-global-only-relational": dict(
        local_relational=False, global_contrastive=True, global_relational=True, head=True
    ),
}


@dataclass
class DataConfig:
    """Which dataset, from where, and how it is augmented."""

    name: str = "cifar10"
    source: str = "auto"  # auto | torchvision | jpeg-copy | lossless-subset | embedded (per dataset)
    root: str | None = None  # None: --data-root, $FEDX_BENCH_DATA, then the user cache dir
    download: bool = False
    verify_checksums: bool = True
    grayscale: Literal["repeat3", "single"] = "repeat3"  # F-MNIST channel handling (spec UNKNOWN)
    train_limit: int | None = None  # class-stratified cap on the training split (CPU variants)
    fraction: float = 1.0  # data-amount sensitivity: class-stratified fraction, then partitioned
    augment: str = "reference"  # reference (per-dataset reference pipeline) | simclr | reference-cifar | ...


@dataclass
class ModelConfig:
    """Backbone and projection head (spec §1.3)."""

    backbone: str = "resnet18"
    width: int | None = None  # None: the backbone's default (64 for resnet18, 32 for cnn4)
    proj_hidden: int = 256
    proj_dim: int = 256


@dataclass
class FederationConfig:
    """Clients, partition and rounds (spec §1.2)."""

    clients: int = 10
    partition: Literal["dirichlet", "iid"] = "dirichlet"
    beta: float = 0.5
    min_size: int = 10
    rounds: int = 100
    local_epochs: int = 10
    sample_fraction: float = 1.0
    partition_seed: int | None = None  # None: the run's seed (the reference seeds both with init_seed)


@dataclass
class OptimConfig:
    """Local optimiser (spec §1.4). batch_size anchors + random_batch_size random images per FedX step."""

    name: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-5
    batch_size: int = 64
    random_batch_size: int | None = None  # None: same as batch_size (the reference's 64+64)
    reset_each_round: bool = True  # the reference re-creates the optimiser every round


@dataclass
class FedXConfig:
    """The FedX add-on (spec §2). ``variant`` picks the ablation of protocols.md."""

    enabled: bool = False
    variant: str = "fedx"
    temperature: float = 0.1  # τ: global contrastive and the student side of both relational losses
    tt: float = 0.1  # target temperature of the global relational loss
    ts: float = 0.1  # target temperature of the local relational loss
    head_hidden: int = 256
    head_dim: int = 256


@dataclass
class EvalConfig:
    """When and how the global model is evaluated (protocols.md)."""

    protocols: list[str] = field(default_factory=lambda: ["linear_probe", "knn"])
    interval: int = 1  # evaluate every k rounds (the final round is always evaluated)
    at_init: bool = True  # also evaluate the random-init encoder (round 0): the learning-signal floor
    probe_epochs: int = 100
    probe_lr: float = 1e-3
    probe_weight_decay: float = 1e-6
    probe_batch_size: int = 64
    knn_k: int = 200
    knn_temperature: float = 0.1
    feature_batch_size: int = 512
    # semi_supervised@v1 (run once, on the final global model)
    semi_fractions: list[float] = field(default_factory=lambda: [0.01, 0.1])  # labelled share of the train split
    semi_epochs: int = 50
    semi_lr_backbone: float = 0.01
    semi_lr_head: float = 0.1
    semi_weight_decay: float = 5e-4
    semi_momentum: float = 0.9  # SGD with Nesterov momentum
    semi_batch_size: int = 64
    semi_freeze_backbone: bool = False  # True: train the new layer only (backbone frozen, BN in eval mode)
    semi_seed: int | None = None  # labelled-subset / fine-tune seed; None: the run's seed
    # angle@v1 (angle.json)
    angle_rounds: list[int] = field(default_factory=list)  # rounds to analyse; empty: the final round only
    angle_bins: int = 90  # histogram bins over [0, 180] degrees (90 -> 2-degree bins)


@dataclass
class PerfConfig:
    """Speed knobs. Defaults reproduce the reference numerics exactly (fp32, eager)."""

    amp: Literal["none", "bf16"] = "none"  # bf16 autocast for the training step (CUDA only)
    channels_last: bool = False  # NHWC memory format (faster convs on GPU tensor cores and CNN4 on CPU)
    compile: bool = False  # torch.compile the backbone (CUDA only)


@dataclass
class LogConfig:
    """Experiment-tracking output; never changes a result (not part of the run id)."""

    tensorboard: bool = False  # TensorBoard event files in <run dir>/tensorboard/ (needs the tensorboard extra)


@dataclass
class RunConfig:
    """Everything that determines one run's numbers. Its hash (minus ``device``/``data.root``) is the run id."""

    method: str = "simclr"
    method_args: dict[str, Any] = field(default_factory=dict)
    fedx: FedXConfig = field(default_factory=FedXConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    log: LogConfig = field(default_factory=LogConfig)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (not part of the run id)
    deterministic: bool = False  # cudnn deterministic mode on GPU

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The part of the config that defines the result (what the run id hashes)."""
        d = self.to_dict()
        d.pop("device")
        d.pop("log")  # tracking output only
        for k in ("channels_last", "compile"):  # layout/compilation: same result distribution, same run
            d["perf"].pop(k)
        d["data"].pop("root")
        d["data"].pop("download")
        return d

    @property
    def run_id(self) -> str:
        return config_hash(self.identity())[:16]

    @property
    def label(self) -> str:
        """Short human label, e.g. ``simclr+fedx/cifar10/s0``."""
        fx = "" if not self.fedx.enabled else ("+fedx" if self.fedx.variant == "fedx" else f"+{self.fedx.variant}")
        extra = getattr(self, "label_extra", "")  # the suite's swept values (set by label_runs; not hashed)
        return f"{self.method}{fx}/{self.data.name}/s{self.seed}" + (f" {extra}" if extra else "")


@dataclass
class SuiteConfig:
    """A named list of runs: a base config crossed with a grid (and optional per-case overrides)."""

    name: str
    runs: list[RunConfig]
    description: str = ""
    source: str | None = None
    reduced_from: str | None = None


def config_hash(d: dict[str, Any]) -> str:
    """sha256 of canonical JSON."""
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- validation


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """Validate ``value`` against the annotation ``tp``; returns the (possibly converted) value."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_value(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        return [_check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")


def _from_dict(cls: type, data: Any, where: str) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            hint = difflib.get_close_matches(str(key), names, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"unknown key {path!r}{extra}")
        kwargs[key] = _check_value(value, hints[key], path)
    return cls(**kwargs)


def _normalise_shorthands(d: dict[str, Any]) -> dict[str, Any]:
    """``fedx: true`` / ``fedx: fedx-no-head`` → a FedXConfig mapping; ``dataset: x`` → ``data.name``."""
    d = copy.deepcopy(d)
    fx = d.get("fedx")
    if isinstance(fx, bool):
        d["fedx"] = {"enabled": fx}
    elif isinstance(fx, str):
        d["fedx"] = {"enabled": fx not in ("none", "off", "false"), "variant": fx}
    if "dataset" in d:
        ds = d.pop("dataset")
        d.setdefault("data", {})
        if isinstance(ds, str):
            d["data"]["name"] = ds
        elif isinstance(ds, dict):
            d["data"].update(ds)
        else:
            raise ConfigError(f"dataset: expected a name or a mapping, got {ds!r}")
    return d


MAX_BATCH = 65536  # a larger batch is a typo (the whole of CIFAR-10 is 50k images)
MAX_RUNS = 1000  # a suite (cases x grid) larger than this is refused unless confirmed (--max-runs)


def valid_device(device: str) -> bool:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (the spelling only; availability is checked before a suite runs)."""
    return device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())


def validate_run(cfg: RunConfig) -> RunConfig:
    """Semantic checks beyond types: values that cannot work. Also checks registry names."""
    from .registry import BACKBONES, DATASETS, EVALUATIONS, load_builtins

    load_builtins()

    def bad(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{key}: {msg}")

    f, o, e = cfg.federation, cfg.optim, cfg.eval
    if f.clients < 1:
        raise bad("federation.clients", f"must be >= 1, got {f.clients}")
    if f.rounds < 1:
        raise bad("federation.rounds", f"must be >= 1, got {f.rounds}")
    if f.local_epochs < 1:
        raise bad("federation.local_epochs", f"must be >= 1, got {f.local_epochs}")
    if f.partition == "dirichlet" and not f.beta > 0:
        raise bad("federation.beta", f"Dirichlet beta must be > 0, got {f.beta}")
    if not 0 < f.sample_fraction <= 1:
        raise bad("federation.sample_fraction", f"must be in (0, 1], got {f.sample_fraction}")
    if f.min_size < 1:
        raise bad("federation.min_size", f"must be >= 1, got {f.min_size}")
    if o.batch_size < 2:
        raise bad("optim.batch_size", f"must be >= 2 (contrastive losses need pairs), got {o.batch_size}")
    if o.random_batch_size is not None and o.random_batch_size < 1:
        raise bad("optim.random_batch_size", f"must be >= 1, got {o.random_batch_size}")
    if o.batch_size > MAX_BATCH:
        raise bad("optim.batch_size", f"must be <= {MAX_BATCH}, got {o.batch_size}")
    if o.random_batch_size is not None and o.random_batch_size > MAX_BATCH:
        raise bad("optim.random_batch_size", f"must be <= {MAX_BATCH}, got {o.random_batch_size}")
    if not o.lr > 0:
        raise bad("optim.lr", f"must be > 0, got {o.lr}")
    if not 0 <= o.momentum < 1:
        raise bad("optim.momentum", f"must be in [0, 1), got {o.momentum}")
    if cfg.seed < 0:
        raise bad("seed", f"must be >= 0, got {cfg.seed}")
    if f.partition_seed is not None and f.partition_seed < 0:
        raise bad("federation.partition_seed", f"must be >= 0, got {f.partition_seed}")
    m = cfg.model
    for key in ("proj_hidden", "proj_dim", "width"):
        v = getattr(m, key)
        if v is not None and v < 1:
            raise bad(f"model.{key}", f"must be >= 1, got {v}")
    for key in ("head_hidden", "head_dim"):
        if getattr(cfg.fedx, key) < 1:
            raise bad(f"fedx.{key}", f"must be >= 1, got {getattr(cfg.fedx, key)}")
    if cfg.fedx.enabled and cfg.fedx.variant in FEDX_VARIANTS and FEDX_VARIANTS[cfg.fedx.variant]["head"] \
            and cfg.fedx.head_dim != m.proj_dim:
        raise bad("fedx.head_dim", f"must equal model.proj_dim ({m.proj_dim}): the global contrastive term compares "
                  f"the head's output with the teacher's projection; got {cfg.fedx.head_dim}")
    for key in ("probe_batch_size", "semi_batch_size", "feature_batch_size"):
        v = getattr(e, key)
        if not 1 <= v <= MAX_BATCH:
            raise bad(f"eval.{key}", f"must be in 1..{MAX_BATCH}, got {v}")
    if not e.probe_lr > 0:
        raise bad("eval.probe_lr", f"must be > 0, got {e.probe_lr}")
    if e.probe_weight_decay < 0:
        raise bad("eval.probe_weight_decay", f"must be >= 0, got {e.probe_weight_decay}")
    if e.knn_k < 1:
        raise bad("eval.knn_k", f"must be >= 1, got {e.knn_k}")
    if not e.knn_temperature > 0:
        raise bad("eval.knn_temperature", f"must be > 0, got {e.knn_temperature}")
    if o.weight_decay < 0:
        raise bad("optim.weight_decay", f"must be >= 0, got {o.weight_decay}")
    if not 0 < cfg.data.fraction <= 1:
        raise bad("data.fraction", f"must be in (0, 1], got {cfg.data.fraction}")
    if cfg.data.train_limit is not None and cfg.data.train_limit < 1:
        raise bad("data.train_limit", f"must be >= 1, got {cfg.data.train_limit}")
    if e.interval < 1:
        raise bad("eval.interval", f"must be >= 1, got {e.interval}")
    if e.probe_epochs < 1:
        raise bad("eval.probe_epochs", f"must be >= 1, got {e.probe_epochs}")
    if len(set(e.protocols)) != len(e.protocols):
        raise bad("eval.protocols", f"duplicate protocol names in {e.protocols}")
    if not e.semi_fractions or any(not 0 < x <= 1 for x in e.semi_fractions):
        raise bad("eval.semi_fractions", f"must be a non-empty list of fractions in (0, 1], got {e.semi_fractions}")
    if len(set(e.semi_fractions)) != len(e.semi_fractions):
        raise bad("eval.semi_fractions", f"duplicate fractions in {e.semi_fractions}")
    if e.semi_epochs < 1:
        raise bad("eval.semi_epochs", f"must be >= 1, got {e.semi_epochs}")
    for key in ("semi_lr_backbone", "semi_lr_head"):
        if not getattr(e, key) > 0:
            raise bad(f"eval.{key}", f"must be > 0, got {getattr(e, key)}")
    if e.semi_weight_decay < 0:
        raise bad("eval.semi_weight_decay", f"must be >= 0, got {e.semi_weight_decay}")
    if not 0 <= e.semi_momentum < 1:
        raise bad("eval.semi_momentum", f"must be in [0, 1), got {e.semi_momentum}")
    if e.semi_batch_size < 1:
        raise bad("eval.semi_batch_size", f"must be >= 1, got {e.semi_batch_size}")
    if e.angle_bins < 1:
        raise bad("eval.angle_bins", f"must be >= 1, got {e.angle_bins}")
    for r in e.angle_rounds:
        if not 1 <= r <= f.rounds:
            raise bad("eval.angle_rounds", f"rounds must be in 1..federation.rounds ({f.rounds}), got {r}")
    if "angle" in e.protocols and f.rounds < 1:
        raise bad("eval.protocols", "angle needs at least one training round (federation.rounds >= 1)")
    for t_key in ("temperature", "tt", "ts"):
        if not getattr(cfg.fedx, t_key) > 0:
            raise bad(f"fedx.{t_key}", "temperatures must be > 0")
    if cfg.fedx.variant not in FEDX_VARIANTS:
        hint = difflib.get_close_matches(cfg.fedx.variant, FEDX_VARIANTS, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        known = ", ".join(FEDX_VARIANTS)
        raise bad("fedx.variant", f"unknown FedX variant {cfg.fedx.variant!r}{extra}; known: {known}")
    if not valid_device(cfg.device):
        raise bad("device", f"must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    for p in e.protocols:
        EVALUATIONS.get(p)
    DATASETS.get(cfg.data.name)
    BACKBONES.get(cfg.model.backbone)
    from .methods import resolve_method

    method_cls = resolve_method(cfg.method)
    parsed = method_cls.parse_args(cfg.method_args)  # raises ConfigError on unknown/invalid method_args
    if dataclasses.is_dataclass(parsed):  # fully resolved: defaults written out, so equal settings hash equal
        cfg.method_args = dataclasses.asdict(parsed)
    _check_method_args(cfg.method_args)
    return cfg


def _check_method_args(args: dict[str, Any]) -> None:
    """Generic sanity of a method's own numbers (whatever the method): finite, temperatures > 0, EMA/momentum
    coefficients in [0, 1]."""
    for k, v in args.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if not math.isfinite(v):
            raise ConfigError(f"method_args.{k}: expected a finite number, got {v!r}")
        if "temperature" in k and not v > 0:
            raise ConfigError(f"method_args.{k}: must be > 0, got {v!r}")
        if k in ("momentum", "ema") and not 0 <= v <= 1:
            raise ConfigError(f"method_args.{k}: must be in [0, 1], got {v!r}")


def run_config_from_dict(d: dict[str, Any], where: str = "") -> RunConfig:
    """Build and validate a RunConfig from a plain mapping (YAML-shaped, shorthands allowed)."""
    cfg = _from_dict(RunConfig, _normalise_shorthands(d), where)
    return validate_run(cfg)


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    cur = d
    for p in parts[:-1]:
        nxt = cur.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"grid key {key!r}: {p!r} is not a mapping")
        cur = nxt
    cur[parts[-1]] = value


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


SUITE_KEYS = {"name", "description", "base", "grid", "cases", "reduced_from"}
LABEL_KEYS = ("method", "fedx.enabled", "fedx.variant", "data.name", "seed", "method_args")  # in the plain label


def split_sweep(text: str) -> list[str] | None:
    """``a,b,c`` → ``["a", "b", "c"]`` (commas inside ``[]``/``{}``/quotes do not split); None without a top-level
    comma, so ``[1, 2]`` stays one (list) value."""
    parts, depth, cur, quote = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    if not parts:
        return None
    return [*parts, cur]


def _check_override_key(key: str, value: Any, where: str) -> None:
    """An override's key must exist and its value must have the right type (checked on its own, before merging)."""
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"{where}: {key!r} is not a dotted config key")
    patch: dict[str, Any] = {}
    _set_dotted(patch, key, value)
    try:
        _from_dict(RunConfig, _normalise_shorthands(patch), "")
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def grid_size(doc: dict[str, Any]) -> int:
    """Runs a suite document expands to before de-duplication (cases × every grid axis), without expanding it."""
    n = max(1, len(doc.get("cases") or [{}]))
    for v in (doc.get("grid") or {}).values():
        n *= len(v) if isinstance(v, list) else 1
    return n


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "method_args":
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _short_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ",".join(_short_value(x) for x in v) + "]"
    return str(v)


def label_runs(runs: list[RunConfig], max_keys: int = 4) -> None:
    """Give each run a label that shows the values that vary across the suite beyond method/FedX/dataset/seed,
    e.g. ``simclr/cifar10/s0 beta=0.1`` (the plain label stays in ``spec.json``'s config)."""
    if len(runs) < 2:
        return
    flats = [_flat(r.identity()) for r in runs]
    keys = [k for k in flats[0] if k not in LABEL_KEYS and not k.startswith("method_args")
            and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]
    names = {k: k.rsplit(".", 1)[-1] for k in keys}
    if len(set(names.values())) < len(keys):
        names = dict(zip(keys, keys))
    for r, f in zip(runs, flats):
        r.label_extra = " ".join(f"{names[k]}={_short_value(f.get(k))}" for k in keys[:max_keys])


def expand_suite(doc: dict[str, Any], source: str | None = None, overrides: dict[str, Any] | None = None,
                 sweeps: dict[str, list[Any]] | None = None, max_runs: int | None = MAX_RUNS) -> SuiteConfig:
    """Expand ``base`` × ``cases`` × ``grid`` into validated RunConfigs (duplicates removed, order kept).

    ``grid`` maps dotted keys (``method``, ``fedx``, ``seed``, ``federation.beta``, ``dataset`` ...) to
    lists of values; ``cases`` is a list of partial configs (e.g. one per dataset with its own settings).
    ``overrides`` (``--set``) win over base, cases and grid; ``sweeps`` (``--sweep``, ``--set K=a,b``) replace or
    add grid axes. A suite that would expand to more than ``max_runs`` runs is refused with its count before
    anything is expanded (None: no limit).
    """
    src = source or "<suite>"
    if not isinstance(doc, dict):
        raise ConfigError(f"{src}: a suite must be a mapping with keys {sorted(SUITE_KEYS)}, got "
                          f"{type(doc).__name__}")
    for k in doc:
        if k not in SUITE_KEYS:
            hint = difflib.get_close_matches(str(k), SUITE_KEYS, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{src}: unknown key {k!r}{extra}")
    name = doc.get("name") or (Path(source).stem if source else "suite")
    if not isinstance(name, (str, int)) or not str(name).strip() or "/" in str(name):
        raise ConfigError(f"{src}: name must be a non-empty string without '/', got {name!r}")
    base = doc.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{src}: base must be a mapping (a run config), got {type(base).__name__}")
    base = _normalise_shorthands(base)
    grid = doc.get("grid") or {}
    cases = doc.get("cases") or [{}]
    if not isinstance(grid, dict):
        raise ConfigError(f"{src}: grid must be a mapping of key -> list of values")
    if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
        raise ConfigError(f"{src}: cases must be a list of mappings")
    for k in grid:
        if not isinstance(grid[k], list) or not grid[k]:
            raise ConfigError(f"{src}: grid.{k} must be a non-empty list")
    overrides = dict(overrides or {})
    grid = {k: v for k, v in grid.items() if k not in overrides}  # a --set key is no longer swept
    for k, vals in (sweeps or {}).items():
        if not vals:
            raise ConfigError(f"--sweep {k}: needs at least one value")
        grid[k] = list(vals)
    n = grid_size({"cases": cases, "grid": grid})
    if max_runs is not None and n > max_runs:
        raise ConfigError(f"{src}: expands to {n:,} runs (cases x grid), more than the limit of {max_runs:,}; "
                          f"pass --max-runs {n} to confirm")
    keys = list(grid)
    runs: list[RunConfig] = []
    seen: set[str] = set()
    for ci, case in enumerate(cases):
        case_d = _deep_merge(base, _normalise_shorthands(case))
        for combo in itertools.product(*(grid[k] for k in keys)):
            d = copy.deepcopy(case_d)
            for k, v in [*zip(keys, combo), *overrides.items()]:
                patch: dict[str, Any] = {}
                _set_dotted(patch, k, v)
                d = _deep_merge(d, _normalise_shorthands(patch))
            where = f"cases[{ci}]" if len(cases) > 1 else ""
            try:
                cfg = run_config_from_dict(d, where)
            except ConfigError as e:
                raise ConfigError(f"{src}: {e}") from None
            if cfg.run_id not in seen:
                seen.add(cfg.run_id)
                runs.append(cfg)
    label_runs(runs)
    return SuiteConfig(
        name=str(name),
        runs=runs,
        description=str(doc.get("description", "")),
        source=source,
        reduced_from=doc.get("reduced_from"),
    )


def read_suite_doc(path: str | Path) -> dict[str, Any]:
    """The YAML document of a suite file; every way it can be unreadable is one ConfigError naming the file."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"suite file not found: {p}")
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a suite YAML file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}); a suite is a YAML file") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        msg = str(e).replace("\n", " ")
        raise ConfigError(f"{p}: invalid YAML: {msg}") from None
    if doc is None:
        raise ConfigError(f"{p}: empty suite file (a suite needs at least `base:`; see README, Suites)")
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: a suite must be a YAML mapping with keys {sorted(SUITE_KEYS)}, got a "
                          f"{'list' if isinstance(doc, list) else type(doc).__name__}")
    return doc


def load_suite(path: str | Path, overrides: dict[str, Any] | None = None, sweeps: dict[str, list[Any]] | None = None,
               max_runs: int | None = MAX_RUNS) -> SuiteConfig:
    """Read a suite YAML file. ``overrides`` (dotted keys, CLI ``--set``) win over base, cases and grid;
    ``sweeps`` (CLI ``--sweep``) add or replace grid axes; both are validated key by key first."""
    doc = read_suite_doc(path)
    for k, v in (overrides or {}).items():
        _check_override_key(k, v, f"--set {k}")
    for k, vals in (sweeps or {}).items():
        for v in vals:
            _check_override_key(k, v, f"--sweep {k}")
    return expand_suite(doc, str(path), overrides, sweeps, max_runs)

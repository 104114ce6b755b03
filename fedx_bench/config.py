"""Typed, validated configuration: one ``RunConfig`` per run, ``SuiteConfig`` = base + grid.

Everything a run does is decided by its ``RunConfig``; its hash is the run id. YAML is validated
into these dataclasses before anything runs: an unknown key, a wrong type or an impossible value is a
``ConfigError`` naming the file and the dotted key.

Validation imports no torch: registry names are checked against torch-free declarations and a built-in
method's arguments against its schema in ``methods/specs.py`` (a plug-in method's module is imported).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError
from .methods.fedx_config import FEDX_VARIANTS as FEDX_VARIANTS  # torch-free, beside the FedX add-on
from .methods.fedx_config import FedXConfig as FedXConfig
from .methods.specs import method_schema
from .registry import AGGREGATORS, BACKBONES, DATASETS, EVALUATIONS


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
    aggregator: str = "fedavg"  # server rule, a name in AGGREGATORS (fedavg | ldawa); in the run id unless fedavg


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
        if d["fedx"]["head_dim"] is None:  # hashed as the dimension it resolves to (ids from before stay valid)
            d["fedx"]["head_dim"] = d["model"]["proj_dim"]
        d["data"].pop("root")
        d["data"].pop("download")
        if d["federation"]["aggregator"] == "fedavg":  # the default: left out, so earlier run ids are unchanged
            d["federation"].pop("aggregator")
        return d

    @property
    def run_id(self) -> str:
        return config_hash(self.identity())[:16]

    @property
    def label(self) -> str:
        """Short human label, e.g. ``simclr+fedx/cifar10/s0``."""
        fx = "" if not self.fedx.enabled else ("+fedx" if self.fedx.variant == "fedx" else f"+{self.fedx.variant}")
        agg = "" if self.federation.aggregator == "fedavg" else f"@{self.federation.aggregator}"
        extra = getattr(self, "label_extra", "")  # the suite's swept values (set by label_runs; not hashed)
        return f"{self.method}{agg}{fx}/{self.data.name}/s{self.seed}" + (f" {extra}" if extra else "")


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


def _did_you_mean(name: Any, known: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, or nothing."""
    hint = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


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
            raise ConfigError(f"unknown key {path!r}{_did_you_mean(key, names)}")
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
    """Semantic checks beyond types: values that cannot work. Also checks registry names (without importing the
    modules that register them) and resolves ``method_args`` against the method's schema."""

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
        v = getattr(cfg.fedx, key)
        if v is not None and v < 1:
            raise bad(f"fedx.{key}", f"must be >= 1, got {v}")
    if cfg.fedx.enabled and cfg.fedx.variant in FEDX_VARIANTS and FEDX_VARIANTS[cfg.fedx.variant]["head"] \
            and cfg.fedx.head_dim is not None and cfg.fedx.head_dim != m.proj_dim:
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
        extra = _did_you_mean(cfg.fedx.variant, FEDX_VARIANTS)
        known = ", ".join(FEDX_VARIANTS)
        raise bad("fedx.variant", f"unknown FedX variant {cfg.fedx.variant!r}{extra}; known: {known}")
    if not valid_device(cfg.device):
        raise bad("device", f"must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    for p in e.protocols:
        EVALUATIONS.check(p)
    DATASETS.check(cfg.data.name)
    BACKBONES.check(cfg.model.backbone)
    try:
        AGGREGATORS.check(f.aggregator)
    except ConfigError as err:
        raise bad("federation.aggregator", str(err)) from None
    parsed = parse_method_args(method_schema(cfg.method), cfg.method_args, cfg.method)
    if dataclasses.is_dataclass(parsed):  # fully resolved: defaults written out, so equal settings hash equal
        cfg.method_args = dataclasses.asdict(parsed)
    _check_method_args(cfg.method_args)
    return cfg


def parse_method_args(schema: type, args: dict[str, Any] | None, method: str) -> Any:
    """``method_args`` → an instance of the method's ``Args`` dataclass ``schema``, by the same typed conversion as
    the rest of the config; unknown keys, wrong types and values its checks refuse are ConfigErrors."""
    d = dict(args or {})
    if not dataclasses.is_dataclass(schema):
        if d:
            raise ConfigError(f"method_args: method {method!r} takes no arguments, got {sorted(d)}")
        return schema()
    names = [f.name for f in dataclasses.fields(schema)]
    for k in d:
        if k not in names:
            raise ConfigError(f"unknown key 'method_args.{k}' for method {method!r}{_did_you_mean(k, names)}")
    return _from_dict(schema, d, "method_args")


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


# Suite expansion lives in fedx_bench.suite (which imports this module); these names stay importable from here,
# resolved on first use so that importing either module first works.
_SUITE_NAMES = ("LABEL_KEYS", "SUITE_KEYS", "expand_suite", "grid_size", "label_runs", "load_suite", "read_suite_doc",
                "split_sweep")


def __getattr__(name: str) -> Any:
    if name in _SUITE_NAMES:
        from . import suite

        return getattr(suite, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

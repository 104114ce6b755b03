"""Suites: a YAML document (``base`` × ``cases`` × ``grid``) expanded into validated ``RunConfig``s, with the
command line's overrides (``--set``) and sweeps (``--sweep``), a size limit counted before expanding, and labels
that show the swept values. Split from ``config`` (which holds the typed run config and its validation)."""

from __future__ import annotations

import copy
import difflib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import (
    MAX_RUNS,
    RunConfig,
    SuiteConfig,
    _deep_merge,
    _from_dict,
    _normalise_shorthands,
    _set_dotted,
    run_config_from_dict,
)
from .errors import ConfigError

SUITE_KEYS = {"name", "description", "base", "grid", "cases", "reduced_from"}
LABEL_KEYS = ("method", "fedx.enabled", "fedx.variant", "data.name", "seed", "method_args")  # in the plain label


@dataclass
class SuiteDesign:
    """A suite's design as it was expanded: ``base`` and ``cases`` (shorthands resolved, ``--set`` overrides applied)
    and ``grid`` (a ``--set`` key no longer swept, ``--sweep`` axes added). Expanding it again gives the same runs;
    the suite record stores it so that reports read the design instead of inferring it from the runs."""

    base: dict[str, Any] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    grid: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"base": copy.deepcopy(self.base), "cases": copy.deepcopy(self.cases), "grid": copy.deepcopy(self.grid)}


@dataclass
class Suite(SuiteConfig):
    """An expanded suite together with its ``design`` (what ``expand_suite`` returns)."""

    design: SuiteDesign = field(default_factory=SuiteDesign)


def _override_where_set(case: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``case`` with ``patch``'s values wherever the case itself sets that key (an override wins over a case too)."""
    out = copy.deepcopy(case)
    for k, v in patch.items():
        if k not in out:
            continue
        both = isinstance(v, dict) and isinstance(out[k], dict)
        out[k] = _override_where_set(out[k], v) if both else copy.deepcopy(v)
    return out


def suite_record(suite: SuiteConfig, updated: str) -> dict[str, Any]:
    """``results/suites/<name>.json``: the suite's runs (ids, labels, setting ids) and, for a suite expanded here,
    its design (``base``, ``cases``, ``grid``)."""
    from .setting import setting_id

    rec: dict[str, Any] = {
        "name": suite.name, "source": suite.source, "description": suite.description,
        "reduced_from": suite.reduced_from, "run_ids": [r.run_id for r in suite.runs],
        "labels": {r.run_id: r.label for r in suite.runs}, "updated": updated,
    }
    if isinstance(suite, Suite):
        rec.update(suite.design.to_dict())
        rec["setting_ids"] = {r.run_id: setting_id(r.to_dict()) for r in suite.runs}
    return rec


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
                 sweeps: dict[str, list[Any]] | None = None, max_runs: int | None = MAX_RUNS) -> Suite:
    """Expand ``base`` × ``cases`` × ``grid`` into validated RunConfigs (duplicates removed, order kept), kept with
    the design they came from (``Suite.design``).

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
    design = SuiteDesign(base, [_normalise_shorthands(c) for c in cases], copy.deepcopy(grid))
    for k, v in overrides.items():
        patch: dict[str, Any] = {}
        _set_dotted(patch, k, v)
        patch = _normalise_shorthands(patch)
        design.base = _deep_merge(design.base, patch)
        design.cases = [_override_where_set(c, patch) for c in design.cases]
    runs: list[RunConfig] = []
    seen: set[str] = set()
    for ci, case in enumerate(cases):
        case_d = _deep_merge(base, _normalise_shorthands(case))
        for combo in itertools.product(*(grid[k] for k in keys)):
            d = copy.deepcopy(case_d)
            for k, v in [*zip(keys, combo), *overrides.items()]:
                step: dict[str, Any] = {}
                _set_dotted(step, k, v)
                d = _deep_merge(d, _normalise_shorthands(step))
            where = f"cases[{ci}]" if len(cases) > 1 else ""
            try:
                cfg = run_config_from_dict(d, where)
            except ConfigError as e:
                raise ConfigError(f"{src}: {e}") from None
            if cfg.run_id not in seen:
                seen.add(cfg.run_id)
                runs.append(cfg)
    label_runs(runs)
    return Suite(
        name=str(name),
        runs=runs,
        description=str(doc.get("description", "")),
        source=source,
        reduced_from=doc.get("reduced_from"),
        design=design,
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
               max_runs: int | None = MAX_RUNS) -> Suite:
    """Read a suite YAML file. ``overrides`` (dotted keys, CLI ``--set``) win over base, cases and grid;
    ``sweeps`` (CLI ``--sweep``) add or replace grid axes; both are validated key by key first."""
    doc = read_suite_doc(path)
    for k, v in (overrides or {}).items():
        _check_override_key(k, v, f"--set {k}")
    for k, vals in (sweeps or {}).items():
        for v in vals:
            _check_override_key(k, v, f"--sweep {k}")
    return expand_suite(doc, str(path), overrides, sweeps, max_runs)

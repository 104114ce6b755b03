"""Which runs an artefact shows: the main setting per dataset (Table 1, curves) and the swept settings
(sensitivity). A suite record written by ``run`` declares its design (``base``, ``cases``, ``grid``: ``SuiteDesign``)
and the selection follows it; results recorded before (or a plain results directory) are inferred from the runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..setting import EXCLUDED_KEYS, flatten
from ..store import read_json
from .results import GROUP_SETTINGS, PAPER, settings_key

# Swept variables a sensitivity figure can show: (column, axis label, file tag, value formatter).
SWEEPS: list[tuple[str, str, str, Callable[[Any], str]]] = [
    ("clients", "Clients", "clients", lambda x: f"{float(x):g}"),
    ("local_epochs", "Local epochs", "local-epochs", lambda x: f"{float(x):g}"),
    ("fraction", "Training data used (%)", "data", lambda x: f"{float(x) * 100:g}%"),
    ("beta_or_inf", "Dirichlet β (label skew)", "beta",
     lambda x: "IID" if (x is None or math.isinf(float(x))) else f"{float(x):g}"),
    ("rounds", "Rounds", "rounds", lambda x: f"{float(x):g}"),
]
SWEEP_COLS = [s[0] for s in SWEEPS]
# Settings held fixed within one sweep (the swept columns replace clients/epochs/fraction/beta/partition/rounds).
FIXED_COLS = ["dataset"] + [k for k in GROUP_SETTINGS if k not in
                            ("clients", "local_epochs", "fraction", "beta", "partition", "rounds")]


# Config keys a design can vary -> the report column that shows them (β and IID share one axis).
SWEEP_KEYS = {"federation.clients": "clients", "federation.local_epochs": "local_epochs", "data.fraction": "fraction",
              "federation.beta": "beta_or_inf", "federation.partition": "beta_or_inf", "federation.rounds": "rounds"}


def _in_setting(key: str) -> bool:
    """A dotted config key that is part of a run's setting (not method, FedX, seed, paths, ...)."""
    return not any(key == e or key.startswith(e + ".") for e in EXCLUDED_KEYS)


def _grid_leaves(key: str, value: Any) -> dict[str, Any]:
    """One grid value as dotted config keys (``dataset`` and ``fedx`` are shorthands; mappings are flattened)."""
    if key == "dataset":
        return {"data.name": value} if not isinstance(value, Mapping) else flatten(value, "data.")
    if key == "fedx":
        return {"fedx": value}
    return flatten(value, key + ".") if isinstance(value, Mapping) else {key: value}


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


@dataclass
class SuiteDesign:
    """A suite's design as its record stores it: ``base`` and ``cases`` (shorthands resolved, ``--set`` applied),
    ``grid`` (after ``--set``/``--sweep``) and each run's ``setting_ids``."""

    base: dict[str, Any]
    cases: list[dict[str, Any]]
    grid: dict[str, list[Any]]
    setting_ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_record(cls, rec: Any) -> SuiteDesign | None:
        """The design of a suite record, or None for a record written before records held one."""
        if not isinstance(rec, dict) or not all(k in rec for k in ("base", "cases", "grid")):
            return None
        base, cases, grid = rec["base"], rec["cases"], rec["grid"]
        if not (isinstance(base, dict) and isinstance(cases, list) and isinstance(grid, dict)):
            return None
        return cls(base, [c for c in cases if isinstance(c, dict)], grid, dict(rec.get("setting_ids") or {}))

    def varying_keys(self) -> list[str]:
        """Dotted config keys whose value differs between the design's runs: across cases (each merged over the
        base) or along a grid axis."""
        base = flatten(self.base)
        cases = [{**base, **flatten(c)} for c in self.cases] or [base]
        keys = {k for k in set().union(*cases) if len({_canon(c.get(k)) for c in cases}) > 1}
        for gk, values in self.grid.items():
            leaves = [_grid_leaves(gk, v) for v in (values if isinstance(values, list) else [values])]
            keys |= {k for k in set().union(*leaves) if len({_canon(x.get(k)) for x in leaves}) > 1}
        return sorted(keys)

    def setting_keys(self) -> list[str]:
        """The varying keys that are part of a run's setting (not method, FedX, seed, ...)."""
        return [k for k in self.varying_keys() if _in_setting(k)]

    def sweep_columns(self) -> list[str]:
        """The report's sweep columns (``clients``, ``beta_or_inf``, ...) the design varies."""
        return sorted({SWEEP_KEYS[k] for k in self.varying_keys() if k in SWEEP_KEYS})

    def base_values(self) -> dict[str, Any]:
        """The base's value of every setting key the design varies (where the base sets one)."""
        base = flatten(self.base)
        return {k: base[k] for k in self.setting_keys() if k in base}

    def at_base(self, runs: pd.DataFrame) -> pd.Series:
        """Per run (row): True when its stored config has the base's value for every key the design varies."""
        want = self.base_values()
        if not want:
            return pd.Series(True, index=runs.index)
        flat = run_configs(runs)
        return pd.Series([all(_canon(flat.get(rid, {}).get(k)) == _canon(v) for k, v in want.items())
                          for rid in runs["run_id"]], index=runs.index)


def run_configs(runs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """run id -> its stored config (``spec.json``), flattened to dotted keys."""
    out: dict[str, dict[str, Any]] = {}
    for rid, root in zip(runs["run_id"], runs["results_dir"]):
        spec = read_json(Path(str(root)) / "runs" / str(rid) / "spec.json", {})
        cfg = spec.get("config") if isinstance(spec, dict) else None
        out[str(rid)] = flatten(cfg) if isinstance(cfg, dict) else {}
    return out


def suite_design(suite: str, roots: Iterable[str | Path]) -> SuiteDesign | None:
    """The design recorded for ``suite`` (``<root>/suites/<suite>.json``, the first root that has one)."""
    for root in roots:
        design = SuiteDesign.from_record(read_json(Path(root) / "suites" / f"{suite}.json"))
        if design is not None:
            return design
    return None


def _paper_closeness(row: pd.Series) -> int:
    s = PAPER["setting"]
    return sum(row.get(k) == v for k, v in s.items())


def _budget(row: pd.Series) -> float:
    tl = row.get("train_limit")
    n = math.inf if tl is None or (isinstance(tl, float) and math.isnan(tl)) else float(tl)
    return float(row.get("rounds") or 0) * float(row.get("local_epochs") or 0) * min(n, 1e12)


def main_setting(done: pd.DataFrame, design: SuiteDesign | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per dataset, the one setting Table 1 and the learning curves use. With the suite's ``design``: among the runs
    at the base's values of what the design varies (e.g. the base's β of a β sweep), else — and for results
    recorded without a design — inferred from the runs: the setting with the most runs (ties: closest to the
    paper's setting, then the largest training budget). → (selected, excluded)."""
    if done.empty:
        return done, done
    at_base = design.at_base(done) if design is not None else None
    keep = []
    for _, at in done.groupby("dataset", sort=False):
        if at_base is not None and at_base.loc[at.index].any():
            at = at[at_base.loc[at.index]]
        keys = at["setting_id"] if "setting_id" in at.columns else at.apply(settings_key, axis=1)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for idx, k in zip(at.index, keys):
            groups.setdefault(k, []).append(idx)
        best = max(groups.values(), key=lambda ix: (len(ix), _paper_closeness(at.loc[ix[0]]), _budget(at.loc[ix[0]])))
        keep += best
    sel = done.loc[keep]
    return sel, done.drop(index=keep)


def mode_of(s: pd.Series) -> Any:
    """The most common value (NaN counts as a value)."""
    vc = s.value_counts(dropna=False)
    return vc.index[0] if len(vc) else None


def _eq(series: pd.Series, value: Any) -> pd.Series:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return series.isna()
    return series == value


@dataclass
class Sweep:
    key: str
    label: str
    tag: str
    fmt: Callable[[Any], str]
    points: pd.DataFrame
    series: str = ""  # e.g. "scaled" / "fixed-rounds" for local epochs
    desc: str = ""  # e.g. "rounds scaled, R × E = 1000"


def detect_sweeps(done: pd.DataFrame, design: SuiteDesign | None = None) -> list[Sweep]:
    """Swept variables: within runs that agree on every fixed setting (dataset, backbone, ...), a sweep column
    that takes ≥ 2 values while the other sweep columns sit at their most common value. Local epochs come as up
    to two series: rounds scaled so R × E is constant, and rounds fixed. With the suite's ``design`` only the
    columns it varies are sweeps; without one (older records, a results directory) every column may be."""
    swept = set(design.sweep_columns()) if design is not None else set(SWEEP_COLS)
    runs = done[done["variant"].isin(["none", "fedx"])]
    out: list[Sweep] = []
    if runs.empty:
        return out
    fixed = runs[FIXED_COLS].apply(lambda r: settings_key(r, FIXED_COLS), axis=1)
    for _, g in runs.groupby(fixed, sort=False):
        le_swept = False
        for col, label, tag, fmt in SWEEPS:
            if col not in swept or (col == "rounds" and le_swept):
                continue
            others = [c for c in SWEEP_COLS if c != col and not (col == "local_epochs" and c == "rounds")]
            mask = pd.Series(True, index=g.index)
            for o in others:
                mask &= _eq(g[o], mode_of(g[o]))
            sub = g[mask]
            # only methods measured at >= 2 values of the swept setting take part in the sweep
            n_x = sub.groupby("method")[col].transform("nunique")
            sub = sub[n_x >= 2]
            if sub.empty or sub[col].nunique(dropna=True) < 2:
                continue
            if col != "local_epochs":
                out.append(Sweep(col, label, tag, fmt, sub.assign(x=sub[col])))
                continue
            le_swept = True
            prod = sub["rounds"] * sub["local_epochs"]
            scaled = sub[prod == mode_of(prod)]
            fixed_r = sub[sub["rounds"] == mode_of(sub["rounds"])]
            cand = [("scaled", scaled, f"rounds scaled, R × E = {int(mode_of(prod))}"),
                    ("fixed-rounds", fixed_r, f"rounds fixed, R = {int(mode_of(sub['rounds']))}")]
            seen: set[frozenset[str]] = set()
            for name, part, desc in cand:
                ids = frozenset(part["run_id"])
                if part["local_epochs"].nunique() >= 2 and ids not in seen:
                    seen.add(ids)
                    out.append(Sweep(col, label, f"{tag}_{name}", fmt, part.assign(x=part[col]), name, desc))
    if len({tuple(sorted(set(s.points["dataset"]))) for s in out}) > 1:  # several datasets: tag files by dataset
        for s in out:
            s.tag += "_" + "-".join(sorted(set(s.points["dataset"])))
    return out



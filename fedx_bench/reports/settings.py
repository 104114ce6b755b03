"""Group stored runs by setting so that no cell ever pools unlike runs.

Two runs are comparable only when their ``setting_id`` (``fedx_bench.setting``) and protocol versions agree. A
*table* gathers settings that differ only in the dataset (``data.name``/``data.source``), one dataset column each,
so Table 1's layout survives; every cell is still one setting. Titles name what distinguishes a table's setting
from the others shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import setting as S
from ..store import read_json
from .results import DATASET_DISPLAY, DATASET_ORDER
from .table1 import render_table1

DATASET_KEYS = ("data.name", "data.source")


def setting_dicts(df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """setting_id → setting dict, read from one stored spec.json per setting."""
    out: dict[str, dict[str, Any]] = {}
    if not len(df):
        return out
    for sid, g in df.groupby("setting_id", sort=False):
        r = g.iloc[0]
        spec = read_json(Path(r["results_dir"]) / "runs" / r["run_id"] / "spec.json", {}) or {}
        out[str(sid)] = S.setting_dict(spec.get("config") or {})
    return out


def dataset_sort_key(d: str) -> tuple[int, str]:
    return (DATASET_ORDER.index(d) if d in DATASET_ORDER else 99, str(d))


def select_settings(df: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Runs whose setting id starts with ``prefix`` (a UserError naming the known ids when none does)."""
    from ..errors import UserError

    sel = df[df["setting_id"].astype(str).str.startswith(prefix)] if len(df) else df
    if not len(sel):
        known = ", ".join(sorted(set(df["setting_id"].astype(str)))[:30]) if len(df) else "none"
        raise UserError(f"--setting {prefix}: no stored run has a setting id starting with it (known: {known})")
    return sel


def _without(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    flat = {k: v for k, v in S.flatten(d).items() if k not in keys}
    return flat


def _key(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, default=str)


@dataclass
class SettingTable:
    """One table: runs of settings that differ only in their dataset (one column each)."""

    settings: dict[str, str]  # dataset → setting id (the group key: setting id and protocol versions)
    runs: pd.DataFrame
    common: dict[str, Any]  # the flat setting without the dataset keys
    title: str = ""
    protocols: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return list(self.settings.values())

    def render(self, fmt: str = "md", metric: str = "probe") -> str:
        return render_table1(self.runs, fmt, metric, floor=fmt != "csv")


def group_key(df: pd.DataFrame) -> pd.Series:
    """setting id, plus the protocol versions when they differ within one setting (then each is its own group)."""
    if not len(df):
        return pd.Series(dtype=object)
    pv = df["protocol_versions"].fillna("")
    n = df.assign(_pv=pv).groupby("setting_id")["_pv"].transform("nunique")
    return df["setting_id"].where(n <= 1, df["setting_id"] + "|" + pv)


def setting_tables(done: pd.DataFrame, dicts: dict[str, dict[str, Any]] | None = None) -> list[SettingTable]:
    """Settings of ``done`` gathered into tables (largest first), each titled by what distinguishes it."""
    if not len(done):
        return []
    done = done.assign(_g=group_key(done))
    dicts = dicts if dicts is not None else setting_dicts(done)
    fams: dict[str, list[str]] = {}
    for g, at in done.groupby("_g", sort=False):
        sid = str(at["setting_id"].iloc[0])
        fam = _key(_without(dicts.get(sid, {}), DATASET_KEYS)) + "|" + str(at["protocol_versions"].iloc[0])
        fams.setdefault(fam, []).append(str(g))
    tables: list[SettingTable] = []
    for groups in fams.values():
        by_ds: dict[str, list[str]] = {}
        for g in groups:
            by_ds.setdefault(str(done[done["_g"] == g]["dataset"].iloc[0]), []).append(g)
        # one group per dataset column; a dataset with several groups (e.g. two sources) splits the family
        n_tables = max(len(v) for v in by_ds.values())
        for k in range(n_tables):
            sel = {ds: gs[k] for ds, gs in by_ds.items() if k < len(gs)}
            runs = done[done["_g"].isin(sel.values())].drop(columns="_g")
            sid0 = str(runs["setting_id"].iloc[0])
            tables.append(SettingTable({ds: g for ds, g in sel.items()}, runs,
                                       _without(dicts.get(sid0, {}), DATASET_KEYS),
                                       protocols=str(runs["protocol_versions"].iloc[0])))
    tables.sort(key=lambda t: -len(t.runs))
    keys = S.distinguishing_keys([t.common for t in tables]) if len(tables) > 1 else []
    for t in tables:
        def src(g: str) -> str:
            v = S.flatten(dicts.get(g.split("|")[0], {})).get("data.source")
            return f" ({v})" if v not in (None, "auto") else ""

        ds = ", ".join(f"{DATASET_DISPLAY.get(d, d)}{src(g)} `{g.split('|')[0]}`"
                       for d, g in sorted(t.settings.items(), key=lambda kv: dataset_sort_key(kv[0])))
        rest = " · ".join(f"{S.short_name(k)} {S.fmt_value(t.common.get(k))}" for k in keys)
        t.title = f"Setting {ds}" + (f" — {rest}" if rest else "")
    return tables


def render_setting_tables(df: pd.DataFrame, fmt: str = "md", metric: str = "probe",
                          tables: list[SettingTable] | None = None) -> str:
    """Every table of ``setting_tables`` under its title; in CSV one block with a ``setting_id`` column."""
    done = df[df["state"] == "done"] if len(df) else df
    tables = tables if tables is not None else setting_tables(done)
    if not tables:
        return "No finished runs found.\n"
    if fmt == "csv":
        parts = []
        for t in tables:
            block = pd.read_csv(pd.io.common.StringIO(render_table1(t.runs, "csv", metric)))
            block.insert(0, "setting_id", block["dataset"].map(lambda d, t=t: t.settings.get(d, "").split("|")[0]))
            parts.append(block[block["setting_id"] != ""])
        return pd.concat(parts, ignore_index=True).to_csv(index=False)
    out = []
    head = (f"{len(tables)} setting table(s); a cell pools only runs of one setting (same setting id and protocol "
            "versions).")
    out.append(head if fmt == "md" else f"% {head}")
    for t in tables:
        n = t.runs.groupby(["method", "variant", "dataset"])["seed"].nunique().max()
        hdr = f"{t.title} ({len(t.runs)} runs, up to {n} seeds per cell)"
        out += ["", f"### {hdr}" if fmt == "md" else f"% {hdr}", "", t.render(fmt, metric).rstrip()]
    return "\n".join(out) + "\n"

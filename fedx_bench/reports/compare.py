"""Compare new runs with stored ones (and with the paper), cell by cell, and FLAG what is not like-for-like.

A cell is (method, FedX variant, dataset, key settings). New and stored cells are matched only when method,
variant and dataset agree; among those, identical key settings are preferred, and any remaining difference
(settings, partition hash of a common seed, protocol version) is flagged, so unlike things are never silently
compared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .results import DATASET_DISPLAY, KEY_SETTINGS, collect, paper_value, settings_key
from .style import method_name, variant_name
from .table1 import MISSING, _latex_cell, _stats, fmt_stats

METRICS = {"probe_last": "probe Last", "probe_best": "probe Best", "knn_last": "kNN Last"}


def short_settings(key: tuple[Any, ...]) -> str:
    """``cnn4, 10 cl, β=0.5, 10×5, 10000 img, f=1, jpeg-copy`` from a KEY_SETTINGS tuple."""
    s = dict(zip(KEY_SETTINGS, key))
    het = "IID" if s["partition"] == "iid" else f"β={s['beta']}"
    data = "full" if s["train_limit"] is None else f"{s['train_limit']} img"
    return (f"{s['backbone']}, {s['clients']} cl, {het}, {s['rounds']}×{s['local_epochs']}, {data}, "
            f"f={s['fraction']}, {s['data_source']}")


def _cells(df: pd.DataFrame) -> dict[tuple[Any, ...], pd.DataFrame]:
    if df.empty:
        return {}
    keys = df.apply(lambda r: (r["method"], r["variant"], r["dataset"], settings_key(r, KEY_SETTINGS)), axis=1)
    return {k: g for k, g in df.groupby(keys, sort=False)}


COMPARED_PROTOCOLS = ("linear_probe", "knn", "partition")  # what the compared metrics depend on


def _protocols(g: pd.DataFrame) -> dict[str, set[str]]:
    """Versions per protocol name, for the protocols the compared metrics depend on."""
    out: dict[str, set[str]] = {}
    for s in g["protocol_versions"].dropna():
        for tok in str(s).split(","):
            tok = tok.strip()
            if "@" in tok:
                name, ver = tok.split("@", 1)
                if name in COMPARED_PROTOCOLS:
                    out.setdefault(name, set()).add(ver)
    return out


def _partitions(g: pd.DataFrame) -> dict[Any, set[str]]:
    out: dict[Any, set[str]] = {}
    for seed, h in zip(g["seed"], g["partition_sha256"]):
        if isinstance(h, str) and h:
            out.setdefault(seed, set()).add(h)
    return out


@dataclass
class CompareResult:
    """``cells``: one row per matched cell × metric; ``unmatched_new`` / ``unmatched_stored``: cells without a
    counterpart (same method, variant and dataset) on the other side."""

    cells: pd.DataFrame
    unmatched_new: pd.DataFrame
    unmatched_stored: pd.DataFrame
    baseline_dirs: list[str] = field(default_factory=list)
    new_dirs: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> pd.DataFrame:
        return self.cells[self.cells["flag"]] if len(self.cells) else self.cells

    def render(self, fmt: str = "md") -> str:
        """Markdown, LaTeX or CSV (CSV: the matched cells; unmatched cells as rows with match = none)."""
        if fmt == "csv":
            um = [u.assign(match=side) for u, side in ((self.unmatched_new, "new only"),
                                                         (self.unmatched_stored, "stored only")) if len(u)]
            return pd.concat([self.cells.assign(match="matched"), *um], ignore_index=True).to_csv(index=False)
        header = ["Method", "Variant", "Dataset", "Setting (new)", "Metric", "New", "Stored", "Δ new−stored",
                  "Paper", "Δ new−paper", "Flags"]
        rows = []
        for r in self.cells.itertuples(index=False):
            rows.append([r.method_name, r.variant_name, DATASET_DISPLAY.get(r.dataset, r.dataset), r.settings_new,
                         METRICS.get(r.metric, r.metric), _fmt(r.new_mean, r.new_std, r.new_n),
                         _fmt(r.stored_mean, r.stored_std, r.stored_n), _num(r.delta, True), _num(r.paper),
                         _num(r.delta_paper, True), (r.flags or "") + (f" ({r.notes})" if r.notes else "")])
        title = (f"New runs ({', '.join(self.new_dirs)}) vs stored ({', '.join(self.baseline_dirs)}) vs the paper: "
                 "mean ± std (n seeds), Δ in pp. FLAG = not like-for-like (settings, partition hash of a common seed "
                 "or protocol version differ).")
        n_flag = int(self.cells["flag"].sum()) if len(self.cells) else 0
        n_cells = len(self.cells[["method", "variant", "dataset", "settings_new"]].drop_duplicates()) \
            if len(self.cells) else 0
        summary = (f"{n_cells} matched cells, {n_flag} flagged metric rows; {len(self.unmatched_new)} new-only and "
                   f"{len(self.unmatched_stored)} stored-only cells.")
        if fmt == "latex":
            out = ["\\begin{tabular}{llll" + "c" * (len(header) - 4) + "}", "\\toprule",
                   " & ".join(_latex_cell(h) for h in header) + " \\\\", "\\midrule"]
            out += [" & ".join(_latex_cell(str(c)) for c in row) + " \\\\" for row in rows]
            out += ["\\bottomrule", "\\end{tabular}", f"% {title}", f"% {summary}"]
            for side, u in (("new only", self.unmatched_new), ("stored only", self.unmatched_stored)):
                out += [f"% unmatched ({side}): {x}" for x in _unmatched_lines(u)]
            return "\n".join(out) + "\n"
        if fmt != "md":
            raise ValueError(f"unknown format {fmt!r} (md, latex or csv)")
        out = [title, "", summary, ""]
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        for side, u in (("New runs without a stored counterpart", self.unmatched_new),
                        ("Stored runs without a new counterpart", self.unmatched_stored)):
            out += ["", f"**{side}** ({len(u)}):"]
            out += [f"- {x}" for x in _unmatched_lines(u)] or ["- none"]
        return "\n".join(out) + "\n"


def _unmatched_lines(u: pd.DataFrame) -> list[str]:
    return [f"{r.method_name} {'' if r.variant == 'none' else r.variant_name + ' '}/ "
            f"{DATASET_DISPLAY.get(r.dataset, r.dataset)} / {r.settings} ({r.n_runs} runs)"
            for r in u.itertuples(index=False)]


def _fmt(mean: Any, std: Any, n: Any) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    return fmt_stats((float(mean), float(std), int(n)))


def _num(v: Any, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def _method_label(m: str) -> str:
    return method_name(m)


def compare(baseline_dirs: str | Path | Iterable[str | Path], new_dirs: str | Path | Iterable[str | Path],
            metrics: tuple[str, ...] = ("probe_last", "probe_best")) -> CompareResult:
    """Match each new cell to the stored cell with the same method/variant/dataset (identical key settings
    preferred) and report new vs stored vs paper with FLAGs for any difference that breaks like-for-like."""
    bdirs = [str(baseline_dirs)] if isinstance(baseline_dirs, (str, Path)) else [str(d) for d in baseline_dirs]
    ndirs = [str(new_dirs)] if isinstance(new_dirs, (str, Path)) else [str(d) for d in new_dirs]
    stored, new = collect(bdirs), collect(ndirs)
    stored = stored[stored["state"] == "done"] if len(stored) else stored
    new = new[new["state"] == "done"] if len(new) else new
    sc, nc = _cells(stored), _cells(new)
    used: set[tuple[Any, ...]] = set()
    rows: list[dict[str, Any]] = []
    unmatched_new = []
    for key, g in nc.items():
        m, v, d, sk = key
        cands = [k for k in sc if k[:3] == (m, v, d)]
        if not cands:
            unmatched_new.append(_cell_summary(key, g))
            continue

        best = min(cands, key=lambda k, sk=sk: (sum(a != b for a, b in zip(k[3], sk)), -len(sc[k])))
        used.add(best)
        s = sc[best]
        flags, notes = [], []
        diffs = [f"{name} {b}≠{a}" for name, a, b in zip(KEY_SETTINGS, best[3], sk) if a != b]
        if diffs:
            flags.append("settings differ (new≠stored): " + ", ".join(diffs))
        pn, ps = _partitions(g), _partitions(s)
        common = sorted(set(pn) & set(ps), key=str)
        bad = [f"seed {seed}: {'/'.join(sorted(h[:8] for h in pn[seed]))}≠{'/'.join(sorted(h[:8] for h in ps[seed]))}"
               for seed in common if pn[seed] != ps[seed]]
        if bad:
            flags.append("partition hash differs (" + "; ".join(bad) + ")")
        if not common:
            notes.append("no common seed: partitions not comparable")
        prn, prs = _protocols(g), _protocols(s)
        pbad = [f"{p} {'/'.join(sorted(prn[p]))}≠{'/'.join(sorted(prs[p]))}"
                for p in sorted(set(prn) & set(prs)) if prn[p] != prs[p]]
        if pbad:
            flags.append("protocol version differs (" + "; ".join(pbad) + ")")
        only = sorted(set(prn) ^ set(prs))
        if only:
            notes.append("protocols on one side only: " + ", ".join(only))
        seeds_n, seeds_s = set(g["seed"]), set(s["seed"])
        if seeds_n != seeds_s:
            notes.append(f"seeds new {sorted(seeds_n)} vs stored {sorted(seeds_s)}")
        for met in metrics:
            stn = _stats(g[met].tolist()) if met in g else None
            sts = _stats(s[met].tolist()) if met in s else None
            col = {"probe_last": "last", "probe_best": "best"}.get(met)
            pv = paper_value(m, v == "fedx", d, col) if (col and v in ("none", "fedx")) else None
            rows.append({
                "method": m, "variant": v, "dataset": d, "method_name": _method_label(m),
                "variant_name": "—" if v == "none" else variant_name(m, v),
                "settings_new": short_settings(sk), "settings_stored": short_settings(best[3]), "metric": met,
                "new_mean": None if stn is None else stn[0], "new_std": None if stn is None else stn[1],
                "new_n": 0 if stn is None else stn[2],
                "stored_mean": None if sts is None else sts[0], "stored_std": None if sts is None else sts[1],
                "stored_n": 0 if sts is None else sts[2],
                "delta": None if (stn is None or sts is None) else stn[0] - sts[0],
                "paper": pv, "delta_paper": None if (stn is None or pv is None) else stn[0] - pv,
                "flag": bool(flags), "flags": ("FLAG: " + "; ".join(flags)) if flags else "",
                "notes": "; ".join(notes),
            })
    unmatched_stored = [_cell_summary(k, g) for k, g in sc.items() if k not in used]
    cols = ["method", "variant", "dataset", "method_name", "variant_name", "settings", "n_runs", "seeds"]
    return CompareResult(pd.DataFrame(rows), pd.DataFrame(unmatched_new, columns=cols),
                         pd.DataFrame(unmatched_stored, columns=cols), bdirs, ndirs)


def _cell_summary(key: tuple[Any, ...], g: pd.DataFrame) -> dict[str, Any]:
    m, v, d, sk = key
    return {"method": m, "variant": v, "dataset": d, "method_name": _method_label(m),
            "variant_name": "—" if v == "none" else variant_name(m, v), "settings": short_settings(sk),
            "n_runs": len(g), "seeds": ",".join(str(s) for s in sorted(set(g["seed"]), key=str))}

"""Compare new runs with the stored baselines of the same setting (``fedx-bench compare --baseline A --new B``).

For each setting the new runs have (same ``setting_id`` and protocol versions), every stored method of that setting
is a baseline — built-ins ± FedX, ablation variants, and the random-init encoder (round 0, the learning-signal
floor). Each row shows mean ± std (n) with the 95 % t interval; each new row gets its difference to every baseline,
paired by seed where the partition hashes of the common seeds match (same partition and initial weights), else
unpaired (Welch), with its 95 % CI, p-value and verdict (``fedx_bench.stats``). A setting without stored baselines
is listed with the nearest stored setting and the keys that differ ("rounds 1≠5"). Nothing is matched by method
name: a plug-in method meets the baselines of its setting and no others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import setting as S
from .. import stats
from .results import collect, describe_settings, paper_value
from .settings import group_key, setting_dicts
from .style import variant_name
from .table1 import MISSING, _latex_cell, code_versions, display_name, pair_difference, seed_partitions
from .tables import method_sort_key, variant_order

METRICS = {"probe_last": "probe Last", "probe_best": "probe Best", "knn_last": "kNN Last"}
FLOOR = ("random-init", "none")


def _variant_rank(v: str) -> int:
    order = variant_order({v} | {"none", "fedx"})
    return order.index(v)


def _row_name(method: str, variant: str) -> str:
    if (method, variant) == FLOOR:
        return "Random-init encoder"
    return display_name(method) + ("" if variant == "none" else f" {variant_name(method, variant)}")


@dataclass
class CompareResult:
    """``rows``: one per (setting, side, method, variant, metric) with mean/std/n/CI; ``diffs``: one per (setting,
    new row, baseline row, metric); ``unmatched``: new settings without stored baselines, with the nearest stored
    setting and the differing keys."""

    rows: pd.DataFrame
    diffs: pd.DataFrame
    unmatched: pd.DataFrame
    baseline_dirs: list[str] = field(default_factory=list)
    new_dirs: list[str] = field(default_factory=list)
    metrics: tuple[str, ...] = ("probe_last",)
    titles: dict[str, str] = field(default_factory=dict)
    n_new: int = 0  # finished runs found under new_dirs
    n_stored: int = 0  # finished runs found under baseline_dirs

    @property
    def no_overlap(self) -> bool:
        """No setting of the new runs has a stored baseline."""
        return not len(self.diffs)

    @property
    def flagged(self) -> pd.DataFrame:
        """Differences resting on runs of mixed code versions, or unpaired although seeds are common (partition
        hashes differ)."""
        if not len(self.diffs):
            return self.diffs
        return self.diffs[self.diffs["flag"] != ""]

    def render(self, fmt: str = "md") -> str:
        if fmt == "csv":
            return pd.concat([self.rows.assign(table="row"), self.diffs.assign(table="difference"),
                              self.unmatched.assign(table="no baseline")], ignore_index=True).to_csv(index=False)
        if fmt not in ("md", "latex"):
            raise ValueError(f"unknown format {fmt!r} (md, latex or csv)")
        md = fmt == "md"
        from .build import display_path

        out = [f"New runs ({', '.join(map(display_path, self.new_dirs))}) vs the stored baselines of their setting "
               f"({', '.join(map(display_path, self.baseline_dirs))}): "
               f"{', '.join(METRICS.get(m, m) for m in self.metrics)}, top-1 (%). "
               "Rows: mean ± std (n seeds) [95 % CI]. Differences: new − baseline (pp) [95 % CI], p (t-test), paired "
               "by seed where partition hashes match, else unpaired (Welch). Verdict 'better'/'worse' only when the "
               "CI excludes 0 and n ≥ 3."]
        n_set = self.rows["setting"].nunique() if len(self.rows) else 0
        out.append(f"{n_set} setting(s) with stored baselines; {len(self.unmatched)} without.")
        if not self.n_new:
            out.append(f"No finished runs under {', '.join(map(display_path, self.new_dirs))}: nothing to compare.")
        elif not self.n_stored:
            out.append(f"No finished runs under {', '.join(map(display_path, self.baseline_dirs))}: "
                       "no baseline to compare with.")
        elif self.no_overlap:
            out.append("No overlap: no setting of the new runs has stored runs (see the nearest settings below).")
        for sid in (list(dict.fromkeys(self.rows["setting"])) if len(self.rows) else []):
            rows = self.rows[self.rows["setting"] == sid]
            out += ["", (f"### Setting `{sid}`: " if md else f"% Setting {sid}: ") + self.titles.get(sid, ""), ""]
            header = ["Row", "Source", *(METRICS.get(m, m) for m in self.metrics), "Code versions"]
            body = []
            for (_, side, m, v), g in rows.groupby(["setting", "side", "method", "variant"], sort=False):
                cells = [_row_name(m, v), side]
                for met in self.metrics:
                    r = g[g["metric"] == met]
                    cells.append(MISSING if not len(r) else r.iloc[0]["shown"])
                cv = int(g["code_versions"].max())
                cells.append(f"{cv} (mixed)" if cv > 1 else str(cv))
                body.append(cells)
            out += _table(header, body, md)
            d = self.diffs[self.diffs["setting"] == sid]
            if len(d):
                out += ["", "Differences (new − baseline):" if md else "% Differences (new - baseline)", ""]
                header = ["New", "Baseline", "Metric", "Δ (pp)", "95 % CI", "p", "n", "pairing", "verdict", "flag"]
                body = [[_row_name(r.method, r.variant), _row_name(r.baseline_method, r.baseline_variant),
                         METRICS.get(r.metric, r.metric), f"{r.diff:+.2f}", r.ci, r.p, str(r.n), r.pairing,
                         r.verdict, r.flag or ""] for r in d.itertuples(index=False)]
                out += _table(header, body, md)
        if len(self.unmatched):
            out += ["", "**New settings without stored baselines**:" if md else "% New settings without baselines:"]
            for r in self.unmatched.itertuples(index=False):
                near = (f"nearest stored setting `{r.nearest}` ({r.nearest_title}) differs in {r.n_keys} key(s): "
                        f"{r.differences}") if r.nearest else "no stored setting at all"
                out.append(("- " if md else "% ") + f"`{r.setting}` ({r.title}; {r.rows}): {near}")
        return "\n".join(out) + "\n"


def _table(header: list[str], body: list[list[str]], md: bool) -> list[str]:
    if md:
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
            ["| " + " | ".join(c) + " |" for c in body]
    return ["\\begin{tabular}{ll" + "c" * (len(header) - 2) + "}", "\\toprule",
            " & ".join(_latex_cell(h) for h in header) + " \\\\", "\\midrule",
            *(" & ".join(_latex_cell(c) for c in row) + " \\\\" for row in body), "\\bottomrule", "\\end{tabular}"]


def _dirs(d: str | Path | Iterable[str | Path]) -> list[str]:
    return [str(d)] if isinstance(d, (str, Path)) else [str(x) for x in d]


def _floor_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The random-init encoder as a row: each seed's round-0 values (they depend only on the seed and setting)."""
    f = runs.drop_duplicates(subset=["seed", "partition_sha256"]).copy()
    for met in ("probe_last", "probe_best", "knn_last"):
        src = "knn_init" if met.startswith("knn") else "probe_init"
        f[met] = f[src] if src in f.columns else math.nan
    return f.assign(method=FLOOR[0], variant=FLOOR[1])


def _row_record(sid: str, side: str, m: str, v: str, g: pd.DataFrame, met: str) -> dict[str, Any]:
    s = stats.summary(g[met].tolist()) if met in g.columns else None
    col = {"probe_last": "last", "probe_best": "best"}.get(met)
    pv = paper_value(m, v == "fedx", str(g["dataset"].iloc[0]), col) if col and v in ("none", "fedx") else None
    shown = stats.fmt_summary(s, ci=True) + (f" (paper {pv:.2f})" if pv is not None else "")
    return {"setting": sid, "side": side, "method": m, "variant": v, "metric": met,
            "mean": None if s is None else s.mean, "std": None if s is None else s.std, "n": 0 if s is None else s.n,
            "ci_low": None if s is None or s.ci is None else s.ci[0],
            "ci_high": None if s is None or s.ci is None else s.ci[1], "paper": pv,
            "code_versions": len(code_versions(g)), "seeds": ",".join(map(str, sorted(set(g["seed"]), key=str))),
            "shown": shown}


def compare(baseline_dirs: str | Path | Iterable[str | Path], new_dirs: str | Path | Iterable[str | Path],
            metrics: tuple[str, ...] = ("probe_last",)) -> CompareResult:
    """Per setting of the new runs: new rows beside every stored row of that setting and the new − baseline
    differences with CI, p-value and verdict; settings without baselines with their nearest stored setting."""
    bdirs, ndirs = _dirs(baseline_dirs), _dirs(new_dirs)
    stored, new = collect(bdirs), collect(ndirs)
    stored = stored[stored["state"] == "done"] if len(stored) else stored
    new = new[new["state"] == "done"] if len(new) else new
    counts = {"n_new": len(new), "n_stored": len(stored)}
    if len(stored) and len(new):  # a run present on both sides (same config) is the new side's
        stored = stored[~stored["run_id"].isin(set(new["run_id"]))]
    rows: list[dict[str, Any]] = []
    diffs: list[dict[str, Any]] = []
    unmatched: list[dict[str, Any]] = []
    titles: dict[str, str] = {}
    if not len(new):
        return CompareResult(pd.DataFrame(rows), pd.DataFrame(diffs), pd.DataFrame(unmatched), bdirs, ndirs,
                             metrics, titles, **counts)
    new = new.assign(_g=group_key(new))
    stored = stored.assign(_g=group_key(stored)) if len(stored) else stored.assign(_g=pd.Series(dtype=object))
    sdicts = setting_dicts(stored) if len(stored) else {}
    ndicts = setting_dicts(new)
    for gid, ng in new.groupby("_g", sort=False):
        sid = str(gid)
        sg = stored[stored["_g"] == gid] if len(stored) else stored
        title = describe_settings(ng.iloc[0]) + f"; dataset {ng['dataset'].iloc[0]}"
        titles[sid] = title
        if not len(sg):
            own = ndicts.get(str(ng["setting_id"].iloc[0]), {})
            near = S.nearest(own, sdicts) if sdicts else None
            nrows = ", ".join(sorted({_row_name(m, v) for m, v in zip(ng["method"], ng["variant"])}))
            rec = {"setting": sid, "title": title, "rows": f"{len(ng)} runs: {nrows}", "nearest": None,
                   "nearest_title": "", "n_keys": None, "differences": ""}
            if near is not None:
                at = stored[stored["setting_id"] == near[0]].iloc[0]
                rec.update(nearest=near[0], n_keys=near[1], differences=S.describe_differences(own, sdicts[near[0]]),
                           nearest_title=describe_settings(at) + f"; dataset {at['dataset']}")
            unmatched.append(rec)
            continue
        floor = _floor_frame(pd.concat([sg, ng], ignore_index=True))
        new_rows = list(ng.groupby(["method", "variant"], sort=False))
        base_rows = [(FLOOR, floor)] + sorted(sg.groupby(["method", "variant"], sort=False),
                                              key=lambda kv: (method_sort_key(kv[0][0]), _variant_rank(kv[0][1])))
        for (m, v), g in new_rows:
            rows += [_row_record(sid, "new", m, v, g, met) for met in metrics]
        for (m, v), g in base_rows:
            rows += [_row_record(sid, "stored" if (m, v) != FLOOR else "stored + new", m, v, g, met)
                     for met in metrics]
        for (m, v), g in new_rows:
            for (bm, bv), b in base_rows:
                for met in metrics:
                    d = pair_difference(b, g, met)
                    if d is None:
                        continue
                    flags = []
                    if len(code_versions(pd.concat([g, b]))) > 1:
                        flags.append("mixed code versions")
                    pn, pb = seed_partitions(g), seed_partitions(b)
                    common = set(pn) & set(pb)
                    if d.kind == "unpaired" and len(common) >= 2:
                        flags.append("partition hashes differ for a common seed")
                    diffs.append({"setting": sid, "method": m, "variant": v, "baseline_method": bm,
                                  "baseline_variant": bv, "metric": met, "diff": d.mean,
                                  "ci_low": None if d.ci is None else d.ci[0],
                                  "ci_high": None if d.ci is None else d.ci[1], "ci": stats.fmt_ci(d.ci),
                                  "p_value": d.p, "p": stats.fmt_p(d.p), "n": d.n, "pairing": d.kind,
                                  "verdict": stats.verdict(d, "better", "worse"), "resolved": d.resolved,
                                  "flag": "; ".join(flags)})
    return CompareResult(pd.DataFrame(rows), pd.DataFrame(diffs), pd.DataFrame(unmatched), bdirs, ndirs, metrics,
                         titles, **counts)

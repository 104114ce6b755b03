"""Report tables other than Table 1: ablation, sensitivity, semi-supervised, angle (intra/inter).

Every table is built once as a ``Table`` (display cells + a tidy numeric frame) and rendered to Markdown,
LaTeX or CSV from that one object, so the three formats can never disagree. Missing cells are "—" in
Markdown/LaTeX and empty in CSV, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .. import stats
from ..config import FEDX_VARIANTS
from .results import DATASET_DISPLAY, DATASET_ORDER, ablation_paper, paper_value
from .style import METHOD_ORDER, VARIANT_NAMES, method_name, variant_name
from .table1 import MISSING, _latex_cell, _stats, fmt_stats, pair_difference

Stats = tuple[float, float, int] | None


@dataclass
class Table:
    """Display grid (strings), bold cells (row, col), caption/notes, and the tidy numbers behind it (CSV)."""

    header: list[str]
    rows: list[list[str]]
    data: pd.DataFrame
    caption: str = ""
    notes: list[str] = field(default_factory=list)
    bold: set[tuple[int, int]] = field(default_factory=set)

    def render(self, fmt: str = "md") -> str:
        if fmt == "csv":
            return self.data.to_csv(index=False)
        if fmt == "latex":
            out = ["\\begin{tabular}{" + "l" * self._n_label_cols() + "c" * (len(self.header) - self._n_label_cols())
                   + "}", "\\toprule", " & ".join(_latex_cell(h) for h in self.header) + " \\\\", "\\midrule"]
            for i, r in enumerate(self.rows):
                cells = [_latex_cell(c) for c in r]
                cells = [f"\\textbf{{{c}}}" if (i, j) in self.bold else c for j, c in enumerate(cells)]
                out.append(" & ".join(cells) + " \\\\")
            out += ["\\bottomrule", "\\end{tabular}"]
            out += [f"% {line}" for line in [self.caption, *self.notes] if line]
            return "\n".join(out) + "\n"
        if fmt != "md":
            raise ValueError(f"unknown table format {fmt!r} (md, latex or csv)")
        out = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        for i, r in enumerate(self.rows):
            out.append("| " + " | ".join(f"**{c}**" if (i, j) in self.bold else c for j, c in enumerate(r)) + " |")
        out += ["", self.caption] if self.caption else []
        out += self.notes
        return "\n".join(out) + "\n"

    def _n_label_cols(self) -> int:
        n = 0
        for h in self.header:
            if h in ("Method", "Variant", "Dataset", "Row", "Setting"):
                n += 1
        return max(n, 1)


def dataset_sort_key(d: str) -> tuple[int, str]:
    return (DATASET_ORDER.index(d) if d in DATASET_ORDER else 99, str(d))


def method_sort_key(m: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(m) if m in METHOD_ORDER else 99, str(m))


def variant_order(variants: set[str] | list[str]) -> list[str]:
    """none, fedx, then the ablation variants in ``config.FEDX_VARIANTS`` order, then unknown names."""
    vs = set(variants)
    known = ["none"] + list(FEDX_VARIANTS)
    return [v for v in known if v in vs] + sorted(vs - set(known))


def cell_stats(df: pd.DataFrame, col: str) -> Stats:
    return _stats(df[col].tolist()) if len(df) and col in df.columns else None


def _st_fields(prefix: str, st: Stats) -> dict[str, Any]:
    return {f"{prefix}mean": None if st is None else round(st[0], 4),
            f"{prefix}std": None if st is None else round(st[1], 4),
            f"{prefix}n": 0 if st is None else st[2]}


def _bold_max(rows_stats: list[tuple[int, Stats]], col: int, bold: set[tuple[int, int]]) -> None:
    """Bold the largest mean among the given (row, stats) — only when at least two are present."""
    have = [(i, st) for i, st in rows_stats if st is not None]
    if len(have) >= 2:
        bold.add((max(have, key=lambda t: t[1][0])[0], col))


def _bold_resolved(cands: list[tuple[int, pd.DataFrame]], col: int, metric: str, bold: set[tuple[int, int]]) -> None:
    """Bold the row with the largest mean of ``metric`` only when its difference (paired by seed) to every other
    row is resolved (95 % CI excludes 0, n ≥ 3)."""
    have = [(i, f) for i, f in cands if len(f) and metric in f.columns and f[metric].notna().any()]
    if len(have) < 2:
        return
    best_i, best_f = max(have, key=lambda t: float(t[1][metric].mean()))
    for i, f in have:
        if i == best_i:
            continue
        d = pair_difference(f, best_f, metric)
        if d is None or not d.resolved or d.mean <= 0:
            return
    bold.add((best_i, col))


def diff_fields(prefix: str, d: stats.Difference | None) -> dict[str, Any]:
    """Tidy CSV fields of a difference: mean, CI, p, n, pairing, verdict."""
    return {f"{prefix}mean": None if d is None else round(d.mean, 4),
            f"{prefix}ci_low": None if d is None or d.ci is None else round(d.ci[0], 4),
            f"{prefix}ci_high": None if d is None or d.ci is None else round(d.ci[1], 4),
            f"{prefix}p": None if d is None else d.p, f"{prefix}n": 0 if d is None else d.n,
            f"{prefix}pairing": None if d is None else d.kind,
            f"{prefix}seeds_needed": None if d is None else d.seeds_needed}


def fmt_diff_short(d: stats.Difference | None) -> str:
    """``-0.91 [-1.90, +0.08] p=0.061``, ``+0.06 (1)`` for one pair, — for none."""
    if d is None:
        return MISSING
    if d.ci is None:
        return f"{d.mean:+.2f} ({d.n})"
    return f"{d.mean:+.2f} {stats.fmt_ci(d.ci)} p={stats.fmt_p(d.p)}"


# --------------------------------------------------------------------------- ablation


def ablation_table(df: pd.DataFrame, metric: str = "probe") -> Table:
    """Rows: the base method without FedX, then each FedX variant present (``config.FEDX_VARIANTS`` order),
    per (method, dataset); Last/Best mean ± std, the paper's digitised ablation values beside (±0.5 pp)."""
    header = ["Method", "Dataset", "Variant", "Last", "Best", "Paper Last", "Paper Best", "Δ Last", "Δ Best",
              "Last − base (pp) [95 % CI]", "Verdict"]
    rows: list[list[str]] = []
    data: list[dict[str, Any]] = []
    bold: set[tuple[int, int]] = set()
    used_digitised = False
    for m in sorted(set(df["method"]), key=method_sort_key):
        for d in sorted(set(df[df["method"] == m]["dataset"]), key=dataset_sort_key):
            sel = df[(df["method"] == m) & (df["dataset"] == d)]
            variants = variant_order(set(sel["variant"]) | {"none"})
            block: list[tuple[int, pd.DataFrame]] = []
            base_cell = sel[sel["variant"] == "none"]
            for v in variants:
                cell = sel[sel["variant"] == v]
                st = {c: cell_stats(cell, f"{metric}_{c}") for c in ("last", "best")}
                paper: dict[str, tuple[float, str] | None] = {"last": None, "best": None}
                if metric == "probe":
                    if v == "none":
                        for c in ("last", "best"):
                            pv = paper_value(m, False, d, c)
                            paper[c] = None if pv is None else (pv, "Table 1")
                    else:
                        rec = ablation_paper(v, m, d)
                        if rec is not None:
                            used_digitised = True
                            paper = {c: (float(rec[c]), "digitised ±0.5") for c in ("last", "best")}
                label = f"{method_name(m)} (no FedX)" if v == "none" else f"{VARIANT_NAMES.get(v, v)} ({v})"
                row = [method_name(m), DATASET_DISPLAY.get(d, d), label, fmt_stats(st["last"]),
                       fmt_stats(st["best"])]
                deltas = {}
                for c in ("last", "best"):
                    p = paper[c]
                    row.append(MISSING if p is None else f"{p[0]:.2f} ({p[1]})")
                    deltas[c] = None if (p is None or st[c] is None) else st[c][0] - p[0]
                row += [MISSING if deltas[c] is None else f"{deltas[c]:+.2f}" for c in ("last", "best")]
                vs_base = pair_difference(base_cell, cell, f"{metric}_last") if v != "none" else None
                row += [fmt_diff_short(vs_base), MISSING if v == "none" else stats.verdict(vs_base)]
                block.append((len(rows), cell))
                rows.append(row)
                for c in ("last", "best"):
                    p = paper[c]
                    data.append({"method": m, "dataset": d, "variant": v, "column": c, **_st_fields("", st[c]),
                                 "paper": None if p is None else p[0], "paper_kind": None if p is None else p[1],
                                 "delta": None if deltas[c] is None else round(deltas[c], 4),
                                 **(diff_fields("vs_base_", vs_base) if c == "last" else {})})
            _bold_resolved(block, 3, f"{metric}_last", bold)
            _bold_resolved(block, 4, f"{metric}_best", bold)
    caption = ("Ablation, linear-probe top-1 (%): ours mean ± std (n seeds). Bold: the best of a block, only when "
               "its paired difference to every other row is resolved (95 % CI excludes 0, n ≥ 3). Last − base: "
               "paired by seed, 95 % t interval and paired t-test p; verdict 'helps'/'hurts' only when resolved. "
               "Paper values: the base row from Table 1; FedX variants digitised from the paper's ablation figure "
               "(labelled 'digitised ±0.5', CIFAR-10 FedSimCLR only; the paper has no ablation table).")
    notes = []
    if not used_digitised:
        notes.append("No digitised paper values apply (the paper's ablation figure is FedSimCLR on CIFAR-10).")
    if any(r[3] == MISSING for r in rows):
        notes.append("— = no finished run for that cell (missing, not zero).")
    return Table(header, rows, pd.DataFrame(data), caption, notes, bold)


# --------------------------------------------------------------------------- sensitivity


def paired_diffs(a: pd.DataFrame, b: pd.DataFrame, col_a: str, col_b: str) -> list[float]:
    """b[col_b] − a[col_a] per seed present in both (same seed = same partition and initial weights)."""
    if not len(a) or not len(b):
        return []
    x = a.groupby("seed")[col_a].mean().dropna()
    y = b.groupby("seed")[col_b].mean().dropna()
    return [float(y[s] - x[s]) for s in sorted(set(x.index) & set(y.index))]


def gain_stats(base: pd.DataFrame, fedx: pd.DataFrame, col: str) -> Stats:
    """FedX gain (pp) paired by seed (same seed = same partition and init), mean ± std over paired seeds."""
    return _stats(paired_diffs(base, fedx, col, col))


def fmt_gain(st: Stats) -> str:
    """A signed difference: ``-0.91 ± 0.40 (3)``, ``+0.06 (1)`` for one pair, — for none."""
    if st is None:
        return MISSING
    return f"{st[0]:+.2f} ± {st[1]:.2f} ({st[2]})" if st[2] > 1 else f"{st[0]:+.2f} (1)"


def sensitivity_table(points: pd.DataFrame, x_label: str, fmt_x: Callable[[Any], str],
                      metric: str = "probe_last") -> Table:
    """Rows: method × swept value; base, + FedX (mean ± std) and the paired gain (pp). ``points`` holds the
    done runs of one sweep with an ``x`` column (the swept value)."""
    header = ["Method", x_label, "Base", "+ FedX", "Gain (pp)", "Gain 95 % CI, p", "Verdict"]
    rows: list[list[str]] = []
    data: list[dict[str, Any]] = []
    bold: set[tuple[int, int]] = set()
    for m in sorted(set(points["method"]), key=method_sort_key):
        sel = points[points["method"] == m]
        for x in sorted(set(sel["x"]), key=_x_sort):
            at = sel[sel["x"] == x]
            b, f = at[at["variant"] == "none"], at[at["variant"] == "fedx"]
            sb, sf, g = cell_stats(b, metric), cell_stats(f, metric), gain_stats(b, f, metric)
            dg = pair_difference(b, f, metric) if len(b) and len(f) else None
            i = len(rows)
            rows.append([method_name(m), fmt_x(x), fmt_stats(sb), fmt_stats(sf), fmt_gain(g),
                         MISSING if dg is None else f"{stats.fmt_ci(dg.ci)} p={stats.fmt_p(dg.p)}",
                         stats.verdict(dg)])
            if dg is not None and dg.resolved:
                bold.add((i, 3 if dg.mean > 0 else 2))
            data.append({"method": m, "x": x, "x_label": fmt_x(x), **_st_fields("base_", sb),
                         **_st_fields("fedx_", sf), **_st_fields("gain_", g), **diff_fields("gain_d_", dg)})
    caption = (f"Sensitivity to {x_label.lower()}: {metric.replace('probe_', 'linear-probe top-1 ').strip()} (%), "
               "mean ± std (n seeds); gain = + FedX − base paired by seed (same partition), mean ± std (n pairs), "
               "its 95 % t interval and paired t-test p. Bold and 'helps'/'hurts': only a resolved difference (CI "
               "excludes 0, n ≥ 3); else 'inconclusive' with the seeds that would resolve a gain of that size.")
    notes = ["— = no finished run for that cell (missing, not zero)."] if any(MISSING in r for r in rows) else []
    return Table(header, rows, pd.DataFrame(data), caption, notes, bold)


def _x_sort(x: Any) -> tuple[int, float, str]:
    try:
        return (0, float(x), "")
    except (TypeError, ValueError):
        return (1, math.inf, str(x))


# --------------------------------------------------------------------------- semi-supervised


def semi_fractions(df: pd.DataFrame) -> list[str]:
    """The label fractions stored (column suffixes, e.g. ``0.01``), in numeric order."""
    fr = {c[len("semi_"):-len("_top1")] for c in df.columns
          if c.startswith("semi_") and c.endswith("_top1") and not c.startswith("semi_init_")}
    return sorted(fr, key=float)


def semi_table(df: pd.DataFrame) -> Table:
    """Rows: methods ± FedX; columns: dataset × label fraction, fine-tuned top-1 (%) mean ± std (n seeds)."""
    fracs = semi_fractions(df)
    datasets = sorted(set(df["dataset"]), key=dataset_sort_key)
    header = ["Method"] + [f"{DATASET_DISPLAY.get(d, d)} {float(f) * 100:g}%" for d in datasets for f in fracs]
    rows: list[list[str]] = []
    data: list[dict[str, Any]] = []
    bold: set[tuple[int, int]] = set()
    if any(f"semi_init_{f}_top1" in df.columns for f in fracs):
        # the floor: the same fine-tune from the random-init encoder (one per seed and dataset: it does not
        # depend on the method or FedX, whose initial weights are the seed's)
        init_row = ["Random-init encoder"]
        for d in datasets:
            at = df[df["dataset"] == d].drop_duplicates(subset=["seed"])
            for f in fracs:
                st = cell_stats(at, f"semi_init_{f}_top1")
                init_row.append(fmt_stats(st))
                data.append({"method": "random-init", "variant": "none", "dataset": d, "fraction": float(f),
                             **_st_fields("", st), "n_labelled": None})
        rows.append(init_row)
    for m in sorted(set(df["method"]), key=method_sort_key):
        sel = df[df["method"] == m]
        pair_rows: list[tuple[int, dict[int, pd.DataFrame]]] = []
        for v in variant_order(set(sel["variant"]) | {"none"}):
            cell_row = [method_name(m) if v == "none" else variant_name(m, v)]
            sts: dict[int, pd.DataFrame] = {}
            for d in datasets:
                for f in fracs:
                    cell = sel[(sel["variant"] == v) & (sel["dataset"] == d)]
                    st = cell_stats(cell, f"semi_{f}_top1")
                    sts[len(cell_row)] = cell
                    cell_row.append(fmt_stats(st))
                    nl = cell[f"semi_{f}_n_labelled"].dropna() if f"semi_{f}_n_labelled" in cell else []
                    data.append({"method": m, "variant": v, "dataset": d, "fraction": float(f), **_st_fields("", st),
                                 "n_labelled": int(nl.iloc[0]) if len(nl) else None})
            if v in ("none", "fedx"):
                pair_rows.append((len(rows), sts))
            rows.append(cell_row)
        if len(pair_rows) == 2:
            gain_row = [f"{method_name(m)}: + FedX − base (pp) [95 % CI], verdict"]
            for j, col in enumerate(pair_rows[0][1]):
                f = fracs[j % len(fracs)]
                dg = pair_difference(pair_rows[0][1][col], pair_rows[1][1][col], f"semi_{f}_top1")
                gain_row.append(MISSING if dg is None else f"{fmt_diff_short(dg)}; {stats.verdict(dg)}")
                if dg is not None and dg.resolved:
                    bold.add((pair_rows[1 if dg.mean > 0 else 0][0], col))
                data.append({"method": m, "variant": "fedx-minus-none", "dataset": datasets[j // len(fracs)],
                             "fraction": float(f), **diff_fields("gain_", dg)})
            rows.append(gain_row)
    protos = sorted({p for p in df.get("semi_protocol", pd.Series(dtype=object)).dropna()})
    caption = ("Semi-supervised fine-tuning, test top-1 (%) after fine-tuning the final global model on a "
               f"class-balanced labelled subset; mean ± std (n seeds). Protocol: {', '.join(protos) or '—'} "
               "(benchmark-defined, not from the paper: the paper's protocol and numbers are unknown). "
               "Bold: the better of a ± FedX pair, only where their paired difference is resolved (95 % CI excludes "
               "0, n ≥ 3). Random-init encoder: the same fine-tune from the untrained "
               "initial encoder (the floor a pre-training method has to beat).")
    notes = ["— = no stored result for that cell (missing, not zero)."] if any(MISSING in r for r in rows) else []
    return Table(header, rows, pd.DataFrame(data), caption, notes, bold)


# --------------------------------------------------------------------------- angle

ANGLE_COLUMNS = [("angle_drift_mean", "Drift mean (°)"), ("angle_drift_median", "Drift median (°)"),
                 ("angle_frequent_mean", "Frequent (°)"), ("angle_rare_mean", "Rare (°)"),
                 ("angle_intra", "Intra (°)"), ("angle_inter", "Inter (°)"), ("angle_gap", "Gap (°)")]


def angle_table(df: pd.DataFrame) -> Table:
    """Local-global drift (pooled, frequent vs rare classes) and the global model's class structure
    (intra-/inter-class angle and gap), mean ± std over seeds, per method ± FedX and dataset."""
    header = ["Method", "Dataset", "Round"] + [h for _, h in ANGLE_COLUMNS]
    rows: list[list[str]] = []
    data: list[dict[str, Any]] = []
    for m in sorted(set(df["method"]), key=method_sort_key):
        for d in sorted(set(df[df["method"] == m]["dataset"]), key=dataset_sort_key):
            for v in variant_order(set(df[(df["method"] == m) & (df["dataset"] == d)]["variant"])):
                cell = df[(df["method"] == m) & (df["dataset"] == d) & (df["variant"] == v)]
                rounds = sorted({int(r) for r in cell["angle_round"].dropna()})
                row = [method_name(m) if v == "none" else f"{method_name(m)} {variant_name(m, v)}",
                       DATASET_DISPLAY.get(d, d), "/".join(map(str, rounds)) or MISSING]
                rec: dict[str, Any] = {"method": m, "variant": v, "dataset": d, "round": "/".join(map(str, rounds))}
                for col, _ in ANGLE_COLUMNS:
                    st = cell_stats(cell, col)
                    row.append(fmt_stats(st))
                    rec.update(_st_fields(f"{col.removeprefix('angle_')}_", st))
                rows.append(row)
                data.append(rec)
    protos = sorted({p for p in df.get("angle_protocol", pd.Series(dtype=object)).dropna()})
    caption = ("Angles (degrees) on L2-normalised backbone features of the test split. Drift: arccos between each "
               "client's locally trained model and the global model it started from (pooled over clients; "
               "frequent/rare = the image's class is frequent/rare in that client's data). Intra/inter: mean "
               "pairwise angle within/between classes of the global model; gap = inter − intra. Mean ± std "
               f"(n seeds). Protocol: {', '.join(protos) or '—'} (benchmark-defined, not from the paper).")
    notes = ["— = not stored for that cell (missing, not zero)."] if any(MISSING in r for r in rows) else []
    return Table(header, rows, pd.DataFrame(data), caption, notes)


# --------------------------------------------------------------------------- FedX effect per base method


def fedx_effect_table(df: pd.DataFrame, metric: str = "probe") -> Table:
    """Per dataset × base method: does the method learn (beat the random-init encoder under the same probe) and
    does FedX help it? Differences are paired by seed with a 95 % t interval and p-value; a verdict is given only
    when the interval excludes 0 with n ≥ 3 (``fedx_bench.stats``), so two seeds never read as a result."""
    header = ["Dataset", "Method", "Random init", "Base Last", "+ FedX Last", "Base − init (pp)",
              "FedX gain (pp)", "FedX gain 95 % CI, p", "Learns?", "FedX helps?"]
    rows: list[list[str]] = []
    data: list[dict[str, Any]] = []
    bold: set[tuple[int, int]] = set()
    last, init = f"{metric}_last", f"{metric}_init"
    for d in sorted(set(df["dataset"]), key=dataset_sort_key):
        at_d = df[df["dataset"] == d]
        for m in sorted(set(at_d["method"]), key=method_sort_key):
            sel = at_d[at_d["method"] == m]
            b, f = sel[sel["variant"] == "none"], sel[sel["variant"] == "fedx"]
            if not len(b) and not len(f):
                continue
            ref = b if len(b) else f
            s_init, sb, sf = cell_stats(ref, init), cell_stats(b, last), cell_stats(f, last)
            learn = paired_diffs(b, b, init, last)
            d_learn = pair_difference(b, b, init, last) if len(b) else None
            d_learn_fx = pair_difference(f, f, init, last) if len(f) else None
            gain = paired_diffs(b, f, last, last)
            d_gain = pair_difference(b, f, last) if len(b) and len(f) else None
            i = len(rows)
            learns = stats.verdict(d_learn, "yes", "no") if d_learn is not None else MISSING
            if d_learn_fx is not None:
                learns += f"; + FedX {stats.verdict(d_learn_fx, 'yes', 'no')}"
            rows.append([DATASET_DISPLAY.get(d, d), method_name(m), fmt_stats(s_init), fmt_stats(sb), fmt_stats(sf),
                         fmt_gain(_stats(learn)), fmt_gain(_stats(gain)),
                         MISSING if d_gain is None else f"{stats.fmt_ci(d_gain.ci)} p={stats.fmt_p(d_gain.p)}",
                         learns, stats.verdict(d_gain)])
            if d_gain is not None and d_gain.resolved:
                bold.add((i, 4 if d_gain.mean > 0 else 3))
            gst, lst = _stats(gain), _stats(learn)
            data.append({"dataset": d, "method": m, **_st_fields("init_", s_init), **_st_fields("base_", sb),
                         **_st_fields("fedx_", sf), **_st_fields("learn_", lst), **_st_fields("gain_", gst),
                         **diff_fields("gain_d_", d_gain), "gain_verdict": stats.verdict(d_gain),
                         "gain_pairs": ";".join(f"{x:+.4f}" for x in gain)})
    name = {"probe": "linear-probe", "knn": "kNN"}.get(metric, metric)
    caption = (f"FedX effect per base method, {name} top-1 (%) after the final round: mean ± std (n seeds). "
               "Random init = the same probe on the untrained initial encoder (round 0), the learning-signal floor. "
               "Base − init and FedX gain are paired by seed (same partition and initial weights), with the 95 % t "
               "interval and paired t-test p. Verdicts 'yes'/'helps' or 'no'/'hurts' only when the interval excludes "
               "0 and n ≥ 3; otherwise 'inconclusive' with the number of seeds that would resolve a difference of the "
               "observed size at the observed paired noise. Bold: the better of a resolved pair.")
    notes = ["— = no finished run for that cell (missing, not zero)."] if any(MISSING in r[3:5] for r in rows) else []
    return Table(header, rows, pd.DataFrame(data), caption, notes, bold)

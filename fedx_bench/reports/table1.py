"""The paper-style Table 1 (ours mean ± std over seeds beside the paper's value and Δ) and the
end-of-suite summary (linear probe and kNN vs the random-init encoder)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .. import stats
from .results import DATASET_DISPLAY, DATASET_ORDER, PAPER, PAPER_DATASETS, paper_value
from .style import METHOD_ORDER, method_name


def display_name(method: str) -> str:
    """Paper-style name (see ``style.method_name``)."""
    return method_name(method)


MISSING = "—"


def _stats(values: list[float]) -> tuple[float, float, int] | None:
    """(mean, sample std, n) via ``fedx_bench.stats.summary``; None without a value."""
    s = stats.summary(values)
    return None if s is None else s.as_tuple()


def seed_values(cell: pd.DataFrame, col: str) -> dict[Any, float]:
    """seed → value (mean over duplicate rows of one seed) of the finite values of ``col``."""
    if not len(cell) or col not in cell.columns:
        return {}
    g = cell.groupby("seed")[col].mean().dropna()
    return {k: float(v) for k, v in g.items()}


def seed_partitions(cell: pd.DataFrame) -> dict[Any, set[str]]:
    out: dict[Any, set[str]] = {}
    if len(cell) and "partition_sha256" in cell.columns:
        for seed, h in zip(cell["seed"], cell["partition_sha256"]):
            if isinstance(h, str) and h:
                out.setdefault(seed, set()).add(h)
    return out


def pair_difference(a: pd.DataFrame, b: pd.DataFrame, col_a: str, col_b: str | None = None
                    ) -> stats.Difference | None:
    """b − a: paired by seed when every common seed has the same partition hash on both sides (same partition and
    initial weights), else unpaired (Welch). ``Difference.kind`` says which."""
    va, vb = seed_values(a, col_a), seed_values(b, col_b or col_a)
    pa, pb = seed_partitions(a), seed_partitions(b)
    common = set(va) & set(vb)
    pairable = all(pa.get(s) == pb.get(s) and len(pa.get(s) or ()) <= 1 for s in common)
    return stats.difference(va, vb, pairable)


def code_versions(cell: pd.DataFrame) -> set[str]:
    if not len(cell) or "code_version" not in cell.columns:
        return set()
    return {str(v) for v in cell["code_version"].dropna()}


def fmt_stats(st: tuple[float, float, int] | None) -> str:
    """``48.80 ± 0.52 (3)``; a single seed shows no ± ; no value shows —."""
    if st is None:
        return MISSING
    mean, std, n = st
    return f"{mean:.2f} ± {std:.2f} ({n})" if n > 1 else f"{mean:.2f} (1)"


def _row_label(method: str, variant: str) -> str:
    if variant == "none":
        return display_name(method)
    return "+ FedX" if variant == "fedx" else f"+ {variant}"


def _datasets(df: pd.DataFrame, full: bool = False) -> list[str]:
    present = list(dict.fromkeys(df["dataset"].tolist()))
    if full:
        present = PAPER_DATASETS + [d for d in present if d not in PAPER_DATASETS]
    return [d for d in DATASET_ORDER if d in present] + [d for d in present if d not in DATASET_ORDER]


def _differs_from_paper(df: pd.DataFrame) -> list[str]:
    """Settings in which the runs differ from the paper's Table 1 setting (so Δ is not like-for-like)."""
    notes = []
    for key, val in PAPER["setting"].items():
        col = {"clients": "clients", "beta": "beta", "rounds": "rounds", "local_epochs": "local_epochs",
               "backbone": "backbone"}[key]
        other = sorted({str(v) for v in df[col].dropna().tolist() if v != val})
        if other:
            notes.append(f"{key}={'/'.join(other)} (paper: {val})")
    if df["train_limit"].notna().any():
        notes.append("training split limited to " + "/".join(sorted({str(int(v)) for v in df["train_limit"].dropna()})))
    if df["data_notes"].astype(str).str.contains("JPEG copy").any():
        notes.append("CIFAR-10 from the JPEG copy (q75), not the original pixels")
    return notes


def table1_frame(df: pd.DataFrame, metric: str = "probe", *, full: bool = False,
                 variants: list[str] | None = None) -> list[dict[Any, Any]]:
    """Rows: base methods and their ``+ FedX`` variants (paper order); columns: dataset × {Last, Best} ×
    {ours, paper, Δ}. Only finished runs count; missing cells are NaN/None (rendered —, never 0).

    ``full``: all ten paper rows and the paper's three datasets even without runs (paper value beside —), so a
    partial reproduction still shows what is missing. ``variants``: keep only these FedX variants (e.g.
    ``["none", "fedx"]`` for the paper's table, leaving ablation variants to the ablation table)."""
    done = df[df["state"] == "done"] if len(df) else df
    if variants is not None and len(done):
        done = done[done["variant"].isin(variants)]
    order = METHOD_ORDER
    present = set(done["method"]) if len(done) else set()
    methods = [m for m in order if m in present or full] + sorted(present - set(order))
    rows: list[dict[str, Any]] = []
    datasets = _datasets(done, full) if (len(done) or full) else []
    for m in methods:
        have = set(done[done["method"] == m]["variant"]) if len(done) else set()
        if full and m in PAPER["table1"]:
            have |= {"fedx"}
        variants_m = ["none"] + sorted(v for v in have if v != "none")
        if "fedx" in variants_m:
            variants_m = ["none", "fedx"] + [v for v in variants_m if v not in ("none", "fedx")]
        if variants is not None:
            variants_m = [v for v in variants_m if v in variants]
        for v in variants_m:
            sel = done[(done["method"] == m) & (done["variant"] == v)] if len(done) else done
            row: dict[str, Any] = {"method": m, "variant": v, "row": _row_label(m, v)}
            for d in datasets:
                cell = sel[sel["dataset"] == d] if len(sel) else sel
                row[(d, "cell")] = cell
                for col in ("last", "best"):
                    st = _stats(cell[f"{metric}_{col}"].tolist()) if len(cell) else None
                    paper = paper_value(m, v == "fedx", d, col) if v in ("none", "fedx") and metric == "probe" else None
                    row[(d, col, "ours")] = st
                    row[(d, col, "paper")] = paper
                    row[(d, col, "delta")] = (st[0] - paper) if (st is not None and paper is not None) else None
            rows.append(row)
    return rows


def _paper_source(method: str, variant: str, dataset: str, column: str) -> str | None:
    if variant not in ("none", "fedx"):
        return None
    for c in PAPER.get("table1_cells", []):
        if (c["method"], c["fedx"], c["dataset"], c["column"]) == (method, variant == "fedx", dataset, column):
            return str(c["source"])
    return None


def render_table1(df: pd.DataFrame, fmt: str = "md", metric: str = "probe", *, full: bool = False,
                  variants: list[str] | None = None, floor: bool = False) -> str:
    """Render Table 1 as Markdown, LaTeX or CSV. Bold: the better of a ± FedX pair, only where their difference
    (paired by seed) is resolved (95 % CI excludes 0, n ≥ 3). † marks a cell whose runs were made by more than one
    code version. ``full``/``variants`` as in ``table1_frame``; ``floor`` adds the random-init encoder row."""
    t = table1_frame(df, metric, full=full, variants=variants)
    if not t:
        return "No finished runs found.\n"
    datasets = sorted({k[0] for k in t[0] if isinstance(k, tuple)},
                      key=lambda d: DATASET_ORDER.index(d) if d in DATASET_ORDER else 99)
    if fmt == "csv":
        out_rows = []
        for r in t:
            for d in datasets:
                for col in ("last", "best"):
                    st = r[(d, col, "ours")]
                    out_rows.append({
                        "method": r["method"], "variant": r["variant"], "row": r["row"], "dataset": d, "column": col,
                        "mean": None if st is None else round(st[0], 4),
                        "std": None if st is None else round(st[1], 4),
                        "n": 0 if st is None else st[2],
                        "paper": r[(d, col, "paper")],
                        "delta": None if r[(d, col, "delta")] is None else round(r[(d, col, "delta")], 4),
                        "paper_source": _paper_source(r["method"], r["variant"], d, col),
                        "code_versions": len(code_versions(r.get((d, "cell"), pd.DataFrame()))),
                    })
        return pd.DataFrame(out_rows).to_csv(index=False)
    bold = _bold_cells(t, datasets, metric)
    header = ["Method"] + [f"{DATASET_DISPLAY.get(d, d)} {c}" for d in datasets for c in ("Last", "Best")]
    lines_body = []
    n_missing = n_mixed = 0
    done_all = df[df["state"] == "done"] if len(df) else df
    if floor and len(done_all):
        fl = ["Random-init encoder"]
        for d in datasets:
            at = done_all[done_all["dataset"] == d].drop_duplicates(subset=["seed"])
            fl += [fmt_stats(_stats(at[f"{metric}_init"].tolist())) if len(at) else MISSING, MISSING]
        lines_body.append(fl)
    for i, r in enumerate(t):
        cells = [r["row"]]
        for d in datasets:
            mixed = len(code_versions(r.get((d, "cell"), pd.DataFrame()))) > 1
            n_mixed += mixed
            for col in ("last", "best"):
                n_missing += r[(d, col, "ours")] is None
                ours = fmt_stats(r[(d, col, "ours")]) + (" †" if mixed else "")
                if (i, d, col) in bold:
                    ours = f"**{ours}**" if fmt == "md" else f"\\textbf{{{ours}}}"
                paper = r[(d, col, "paper")]
                delta = r[(d, col, "delta")]
                extra = ""
                if paper is not None:
                    extra = f" / {paper:.2f}" + (f" ({delta:+.2f})" if delta is not None else "")
                cells.append(ours + extra)
        lines_body.append(cells)
    done = df[df["state"] == "done"] if len(df) else df
    notes = _differs_from_paper(done) if len(done) else []
    metric_name = {"probe": "linear-probe top-1 (%)", "knn": "kNN top-1 (%)"}[metric]
    pcol = "protocol_versions" if "protocol_versions" in done.columns else "protocols"
    protocols = sorted({str(x) for x in done[pcol].dropna()}) if len(done) else []
    caption = (f"{metric_name}: ours mean ± std (n seeds) / paper (Δ pp). Last = final round, Best = max over "
               f"evaluated rounds (test-set-selected, as in the reference). Protocols: {'; '.join(protocols)}. "
               "Bold: the better of a ± FedX pair, only where the difference paired by seed is resolved (95 % CI "
               "excludes 0, n ≥ 3).")
    if n_mixed:
        caption += (f" † = the cell's runs were made by more than one code version ({n_mixed} dataset cells; "
                    "see runs.csv, column code_version).")
    if n_missing:
        caption += (f" — = no finished run for that cell ({n_missing} of {len(t) * len(datasets) * 2} cells); "
                    "it is missing, not zero.")
    if fmt == "latex":
        out = ["\\begin{tabular}{l" + "c" * (len(header) - 1) + "}", "\\toprule",
               " & ".join(header) + " \\\\", "\\midrule"]
        for cells in lines_body:
            out.append(" & ".join(_latex_cell(c) for c in cells) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", f"% {caption}"]
        out += [f"% Differs from the paper's setting: {n}" for n in notes]
        return "\n".join(out) + "\n"
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in lines_body]
    out += ["", caption]
    if notes:
        out.append("Differs from the paper's setting (Δ is not like-for-like): " + "; ".join(notes) + ".")
    return "\n".join(out) + "\n"


def _latex_cell(c: str) -> str:
    """Escape a rendered cell for LaTeX (±, —, Δ, +, %, _)."""
    c = c.replace("%", "\\%").replace("_", "\\_").replace("#", "\\#").replace("&", "\\&")
    for uni, tex in (("±", "$\\pm$"), ("—", "--"), ("Δ", "$\\Delta$"), ("β", "$\\beta$"), ("≠", "$\\neq$"),
                     ("×", "$\\times$"), ("−", "$-$"), ("°", "$^\\circ$"), ("→", "$\\to$")):
        c = c.replace(uni, tex)
    return c


def _bold_cells(t: list[dict[Any, Any]], datasets: list[str], metric: str = "probe") -> set[tuple[int, str, str]]:
    """(row, dataset, column) of the better of each ± FedX pair where their difference is resolved."""
    bold: set[tuple[int, str, str]] = set()
    for m in {r["method"] for r in t}:
        pair = [(i, r) for i, r in enumerate(t) if r["method"] == m and r["variant"] in ("none", "fedx")]
        if len(pair) != 2:
            continue
        (ib, rb), (ifx, rf) = sorted(pair, key=lambda ir: ir[1]["variant"] != "none")
        for d in datasets:
            cb, cf = rb.get((d, "cell")), rf.get((d, "cell"))
            if cb is None or cf is None or not len(cb) or not len(cf):
                continue
            for col in ("last", "best"):
                diff = pair_difference(cb, cf, f"{metric}_{col}")
                if diff is not None and diff.resolved:
                    bold.add((ifx if diff.mean > 0 else ib, d, col))
    return bold


def render_summary(df: pd.DataFrame) -> str:
    """End-of-suite table: per method row, per dataset probe Last/Best and kNN Last, plus the random-init
    encoder row (the learning-signal floor: the same probe on the untrained initial backbone)."""
    done = df[df["state"] == "done"]
    if done.empty:
        return "No finished runs.\n"
    datasets = _datasets(done)
    header = ["Method"] + [f"{DATASET_DISPLAY.get(d, d)} {c}" for d in datasets
                           for c in ("probe Last", "probe Best", "kNN Last")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    init_cells = ["Random-init encoder"]
    for d in datasets:
        sel = done[done["dataset"] == d].drop_duplicates(subset=["seed", "backbone", "train_limit", "fraction"])
        init_cells += [fmt_stats(_stats(sel["probe_init"].tolist())), MISSING,
                       fmt_stats(_stats(sel["knn_init"].tolist()))]
    lines.append("| " + " | ".join(init_cells) + " |")
    t = table1_frame(done)
    tk = table1_frame(done, metric="knn")
    for r, rk in zip(t, tk):
        cells = [display_name(r["method"]) + ("" if r["variant"] == "none" else f" {r['row']}")]
        for d in datasets:
            cells += [fmt_stats(r[(d, "last", "ours")]), fmt_stats(r[(d, "best", "ours")]),
                      fmt_stats(rk[(d, "last", "ours")])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Top-1 accuracy (%), mean ± std (n seeds). A learning signal means beating the random-init row "
                 "under the same probe, not beating chance.")
    return "\n".join(lines) + "\n"

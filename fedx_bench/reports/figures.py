"""Paper-style figures from stored runs: learning curves, ablation curves, sensitivity, angle distributions.

Each function takes already-selected runs (``results_frame`` rows, done only) and writes ``<stem>.png`` and
``<stem>.pdf``; the caller decides which runs are comparable. Means are over seeds with a ±std band/bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from .results import DATASET_DISPLAY, PAPER
from .style import (
    ACC_LABEL,
    FEDX_COLOUR,
    INIT_COLOUR,
    ROUND_LABEL,
    VARIANT_NAMES,
    apply_rc,
    figure,
    method_colour,
    method_name,
    save,
    series_style,
    variant_name,
)
from .tables import dataset_sort_key, gain_stats, method_sort_key, variant_order


def _curve_stats(curves: pd.DataFrame, run_ids: list[str], metric: str) -> pd.DataFrame:
    """Mean/std/n over runs per round (rounds ≥ 1), from the long per-round frame."""
    c = curves[curves["run_id"].isin(run_ids) & (curves["round"] > 0)].dropna(subset=[metric])
    if c.empty:
        return pd.DataFrame(columns=["round", "mean", "std", "n"])
    g = c.groupby("round")[metric]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "n": g.count()}).reset_index()
    return out.sort_values("round")


def _init_level(curves: pd.DataFrame, runs: pd.DataFrame, metric: str) -> float | None:
    """The random-init encoder (round 0), averaged over the distinct seeds (± FedX share it per seed)."""
    c = curves[curves["run_id"].isin(runs["run_id"]) & (curves["round"] == 0)].dropna(subset=[metric])
    if c.empty:
        return None
    c = c.merge(runs[["run_id", "seed"]], on="run_id")
    return float(c.groupby("seed")[metric].mean().mean())


def _draw_series(ax: Any, st: pd.DataFrame, style: dict[str, Any], label: str, band_alpha: float = 0.2) -> None:
    x, y, s = st["round"].to_numpy(), st["mean"].to_numpy(), st["std"].to_numpy()
    kw = {"color": style["color"], "linestyle": style["linestyle"], "label": label}
    if len(x) <= 12:
        kw.update(marker=style.get("marker", "o"), markersize=3)
    ax.plot(x, y, **kw)
    if (st["n"] > 1).any():
        ax.fill_between(x, y - s, y + s, color=style["color"], alpha=band_alpha, linewidth=0)


def _finish_axes(ax: Any, title: str, ylabel: bool) -> None:
    ax.set_title(title)
    ax.set_xlabel(ROUND_LABEL)
    if ylabel:
        ax.set_ylabel(ACC_LABEL)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))


def _draw_init(ax: Any, init: float | None, lows: list[float], highs: list[float]) -> None:
    """Dashed line at the random-init encoder. When it lies far below the curves, keep the curves readable:
    the y-axis stays on the curves and the line's value is written at the bottom edge instead."""
    if init is None:
        return
    ax.axhline(init, color=INIT_COLOUR, linestyle="--", linewidth=0.9, label="Random-init encoder")
    if not lows:
        return
    lo, hi = min(lows), max(highs)
    span = max(hi - lo, 1.0)
    if init < lo - span:
        ax.set_ylim(lo - 0.12 * span, hi + 0.08 * span)
        ax.annotate(f"random init: {init:.1f}% ↓", xy=(0.98, 0.02), xycoords="axes fraction", ha="right",
                    va="bottom", fontsize=8, color=INIT_COLOUR)


def _legend_below(fig: Any, axes: Any, ncol: int | None = None) -> None:
    """One legend for the figure, under the panels (keeps the curves unobscured at column width)."""
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if not handles:
        return
    n = ncol or min(len(labels), 4)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=n, handlelength=2.2,
               columnspacing=1.2)


def learning_curves(curves: pd.DataFrame, runs: pd.DataFrame, method: str, path_stem: Path,
                    metric: str = "linear_probe_top1") -> list[Path]:
    """The paper's learning-curve figure: one panel per dataset, base vs + FedX (mean ± std over seeds),
    dashed line = the random-init encoder. Paper's digitised points overlaid only at the paper's 100 rounds."""
    datasets = sorted(set(runs["dataset"]), key=dataset_sort_key)
    lc = PAPER.get("learning_curves_digitised", {})
    with apply_rc():
        fig, axes = figure(len(datasets))
        for k, d in enumerate(datasets):
            ax = axes.flat[k]
            at = runs[runs["dataset"] == d]
            lows: list[float] = []
            highs: list[float] = []
            for v in ("none", "fedx"):
                ids = at[at["variant"] == v]["run_id"].tolist()
                st = _curve_stats(curves, ids, metric)
                if len(st):
                    _draw_series(ax, st, series_style(method, v), variant_name(method, v))
                    lows.append(float((st["mean"] - st["std"]).min()))
                    highs.append(float((st["mean"] + st["std"]).max()))
            rounds = set(at["rounds"].dropna().astype(int))
            if metric == "linear_probe_top1" and lc.get("method") == method and rounds == {100} and d in lc["base"]:
                for v, side in (("none", "base"), ("fedx", "fedx")):
                    ax.plot([r + 1 for r in lc["rounds"]], lc[side][d], linestyle="none", marker="x", markersize=4,
                            color=series_style(method, v)["color"], label=f"{variant_name(method, v)}, paper")
                    lows.append(min(lc[side][d]))
                    highs.append(max(lc[side][d]))
            _draw_init(ax, _init_level(curves, at, metric), lows, highs)
            _finish_axes(ax, DATASET_DISPLAY.get(d, d), ylabel=k == 0)
        _legend_below(fig, axes, ncol=3)
        return save(fig, path_stem)


def ablation_curves(curves: pd.DataFrame, runs: pd.DataFrame, path_stem: Path,
                    metric: str = "linear_probe_top1") -> list[Path]:
    """Component analysis: one panel per (method, dataset), one curve per FedX variant and the base."""
    combos = sorted({(m, d) for m, d in zip(runs["method"], runs["dataset"])},
                    key=lambda md: (method_sort_key(md[0]), dataset_sort_key(md[1])))
    with apply_rc():
        fig, axes = figure(len(combos), height=2.4)
        for k, (m, d) in enumerate(combos):
            ax = axes.flat[k]
            at = runs[(runs["method"] == m) & (runs["dataset"] == d)]
            lows: list[float] = []
            highs: list[float] = []
            for v in variant_order(set(at["variant"])):
                st = _curve_stats(curves, at[at["variant"] == v]["run_id"].tolist(), metric)
                if len(st):
                    label = f"{method_name(m)} (no FedX)" if v == "none" else VARIANT_NAMES.get(v, variant_name(m, v))
                    _draw_series(ax, st, series_style(m, v), label, band_alpha=0.12)
                    lows.append(float((st["mean"] - st["std"]).min()))
                    highs.append(float((st["mean"] + st["std"]).max()))
            _draw_init(ax, _init_level(curves, at, metric), lows, highs)
            title = DATASET_DISPLAY.get(d, d) if len({c[0] for c in combos}) == 1 else \
                f"{method_name(m)}, {DATASET_DISPLAY.get(d, d)}"
            _finish_axes(ax, title, ylabel=k == 0)
        _legend_below(fig, axes, ncol=2 if len(combos) == 1 else 3)
        return save(fig, path_stem)


def sensitivity(points: pd.DataFrame, x_label: str, fmt_x: Callable[[Any], str], path_stem: Path,
                metric: str = "probe_last", subtitle: str = "") -> list[Path]:
    """Two panels per method: accuracy of base and + FedX vs the swept value, and the paired gain (pp),
    both mean ± std over seeds. The swept values are evenly spaced categories (β = IID sits at the end)."""
    methods = sorted(set(points["method"]), key=method_sort_key)
    xs = sorted(set(points["x"]), key=_x_key)
    pos = {x: i for i, x in enumerate(xs)}
    with apply_rc():
        fig, axes = figure(2 * len(methods), nrows=len(methods), height=2.2)
        for r, m in enumerate(methods):
            ax_acc, ax_gain = axes[r, 0], axes[r, 1]
            sel = points[points["method"] == m]
            for v, dx in (("none", -0.06), ("fedx", 0.06)):
                px, py, pe = [], [], []
                for x in xs:
                    vals = sel[(sel["x"] == x) & (sel["variant"] == v)][metric].dropna()
                    if len(vals):
                        px.append(pos[x] + dx)
                        py.append(vals.mean())
                        pe.append(vals.std(ddof=1) if len(vals) > 1 else 0.0)
                if px:
                    stl = series_style(m, v)
                    ax_acc.errorbar(px, py, yerr=pe, color=stl["color"], marker=stl["marker"], linestyle="-",
                                    capsize=2, label=variant_name(m, v))
            init_col = metric.replace("_last", "_init")
            if init_col in sel.columns and sel[init_col].notna().any():
                # the learning-signal floor at each point: the same probe on the seed's untrained encoder
                ix, iy = [], []
                for x in xs:
                    vals = sel[sel["x"] == x].drop_duplicates(subset=["seed"])[init_col].dropna()
                    if len(vals):
                        ix.append(pos[x])
                        iy.append(vals.mean())
                if ix:
                    ax_acc.plot(ix, iy, color=INIT_COLOUR, linestyle="--", linewidth=1.0, marker="_",
                                label="Random-init encoder")
            gx, gy, ge = [], [], []
            for x in xs:
                at = sel[sel["x"] == x]
                g = gain_stats(at[at["variant"] == "none"], at[at["variant"] == "fedx"], metric)
                if g is not None:
                    gx.append(pos[x])
                    gy.append(g[0])
                    ge.append(g[1])
            if gx:
                ax_gain.bar(gx, gy, yerr=ge, color=FEDX_COLOUR, alpha=0.85, width=0.55, capsize=2,
                            error_kw={"elinewidth": 0.9})
            ax_gain.axhline(0, color=INIT_COLOUR, linewidth=0.7)
            for ax in (ax_acc, ax_gain):
                ax.set_xticks(range(len(xs)), [fmt_x(x) for x in xs])
                ax.set_xlim(-0.5, len(xs) - 0.5)
                ax.set_xlabel(x_label)
                ax.grid(axis="x", visible=False)
                ax.set_axisbelow(True)
            ax_acc.set_ylabel(ACC_LABEL)
            ax_gain.set_ylabel("FedX gain (pp)")
            name = method_name(m)
            ax_acc.set_title(f"{name}: final-round accuracy" if len(methods) > 1 else "Final-round accuracy")
            ax_gain.set_title(f"{name}: gain of + FedX" if len(methods) > 1 else "Gain of + FedX")
        if subtitle:
            fig.suptitle(f"{x_label}: {subtitle}", fontsize=9)
        _legend_below(fig, axes)
        return save(fig, path_stem)


def _x_key(x: Any) -> tuple[int, float, str]:
    try:
        return (0, float(x), "")
    except (TypeError, ValueError):
        return (1, math.inf, str(x))


def _mean_hist(recs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray] | None:
    """Average (over seeds) of histograms normalised to % of images per bin; only runs sharing bin edges."""
    if not recs:
        return None
    edges_common = max({tuple(r["edges"]) for r in recs}, key=lambda e: sum(tuple(r["edges"]) == e for r in recs))
    hs = []
    for r in recs:
        if tuple(r["edges"]) != edges_common:
            continue
        h = np.asarray(r["hist"], dtype=float)
        hs.append(100.0 * h / h.sum() if h.sum() > 0 else h)
    return np.asarray(edges_common, dtype=float), np.mean(hs, axis=0)


def angle_distributions(angles: dict[str, dict[str, Any]], runs: pd.DataFrame, method: str,
                        path_stem: Path) -> list[Path]:
    """Local-global drift with vs without FedX: top row the pooled angle histogram (mean over seeds, dashed =
    mean angle), bottom row mean drift on frequent vs rare classes (bars, ±std over seeds). One column per
    dataset. ``angles`` maps run_id → the round record of angle.json that is reported."""
    datasets = sorted(set(runs["dataset"]), key=dataset_sort_key)
    occupied: list[float] = []  # angle range with mass, over all panels (one shared x-range)
    with apply_rc():
        fig, axes = figure(2 * len(datasets), nrows=2, height=2.1)
        for k, d in enumerate(datasets):
            ax_h, ax_b = axes[0, k], axes[1, k]
            at = runs[runs["dataset"] == d]
            bars: dict[str, dict[str, list[float]]] = {}
            for v in ("none", "fedx"):
                ids = [i for i in at[at["variant"] == v]["run_id"] if i in angles]
                stl = series_style(method, v)
                recs, means = [], []
                bars[v] = {"Frequent": [], "Rare": []}
                for i in ids:
                    drift = angles[i].get("drift") or {}
                    pooled = drift.get("pooled") or {}
                    if drift.get("bin_edges") and pooled.get("hist"):
                        recs.append({"edges": drift["bin_edges"], "hist": pooled["hist"]})
                    if pooled.get("mean") is not None:
                        means.append(float(pooled["mean"]))
                    for key, lab in (("frequent", "Frequent"), ("rare", "Rare")):
                        val = (drift.get(key) or {}).get("mean")
                        if val is not None:
                            bars[v][lab].append(float(val))
                mh = _mean_hist(recs)
                if mh is not None:
                    edges, h = mh
                    nz = np.flatnonzero(h > 0)
                    if len(nz):
                        occupied += [float(edges[nz[0]]), float(edges[nz[-1] + 1])]
                    ax_h.stairs(h, edges, color=stl["color"], linewidth=1.3, label=variant_name(method, v))
                    ax_h.stairs(h, edges, color=stl["color"], alpha=0.15, fill=True)
                if means:
                    ax_h.axvline(float(np.mean(means)), color=stl["color"], linestyle="--", linewidth=0.9)
            ax_h.set_title(DATASET_DISPLAY.get(d, d))
            ax_h.set_xlabel("Local–global angle (°)")
            ax_h.set_ylabel("Test images (%)" if k == 0 else "")
            width = 0.36
            for j, v in enumerate(("none", "fedx")):
                labs = ["Frequent", "Rare"]
                ys = [np.mean(bars[v][lab]) if bars[v][lab] else np.nan for lab in labs]
                es = [np.std(bars[v][lab], ddof=1) if len(bars[v][lab]) > 1 else 0.0 for lab in labs]
                ax_b.bar(np.arange(2) + (j - 0.5) * width, ys, width=width, yerr=es, capsize=2,
                         color=series_style(method, v)["color"], label=variant_name(method, v),
                         error_kw={"elinewidth": 0.9})
            ax_b.set_xticks([0, 1], ["Frequent classes", "Rare classes"])
            ax_b.set_ylabel("Mean drift (°)" if k == 0 else "")
            ax_b.grid(axis="x", visible=False)
            ax_b.set_axisbelow(True)
        if occupied:  # stored bins span 0-180°; show where the angles are, with a margin, the same in every panel
            lo, hi = min(occupied), max(occupied)
            pad = 0.05 * max(hi - lo, 1.0)
            for k in range(len(datasets)):
                axes[0, k].set_xlim(max(0.0, lo - pad), min(180.0, hi + pad))
        _legend_below(fig, axes)
        return save(fig, path_stem)


def method_colour_legend() -> dict[str, str]:
    """The palette, for the index (readers see which colour is which method)."""
    from .style import METHOD_NAMES

    return {method_name(m): method_colour(m) for m in METHOD_NAMES} | {"+ FedX": FEDX_COLOUR}

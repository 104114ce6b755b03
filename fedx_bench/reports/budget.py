"""FedX gain against the training budget: per evaluated round of ± FedX pairs evaluated every round.

Why: the paper's gains are after 100 rounds × 10 local epochs; at CPU scale users ask whether the gain starts to
appear as training grows. A long run's first R rounds equal an R-round run (tests/test_budget_prefix.py), so one
long run per arm gives the whole budget axis. The gain is paired by seed (same partition, same augmentations)
with a Student-t 95 % CI and a paired t-test p-value per round
(``fedx_bench.stats.paired``); x is communication rounds and cumulative local steps per client.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..stats import paired
from .results import DATASET_DISPLAY
from .style import FEDX_COLOUR, INIT_COLOUR, apply_rc, figure, save

#: What must be equal for two runs to lie on one budget curve (everything but fedx, seed and rounds).
CURVE_KEYS = ("method", "dataset", "data_source", "train_limit", "fraction", "backbone", "width", "clients",
              "partition", "beta_or_inf", "local_epochs", "sample_fraction", "batch_size", "lr", "augment",
              "probe_epochs", "protocol_versions")
METRICS = {"linear_probe_top1": "probe", "knn_top1": "kNN"}
MIN_ROUNDS = 5  # fewer evaluated rounds than this is no curve
CURVE_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]


@dataclass
class BudgetCurve:
    """The paired gain per round of one ± FedX arm pair (one curve per local-epoch setting)."""

    key: dict
    rows: pd.DataFrame  # round, steps, metric, base_mean, fedx_mean, init, n, gain, ci_low, ci_high, p, seeds


def _steps_per_round(results_dir: str, run_id: str, clients: int) -> dict[int, float]:
    """Local SGD steps per client in each round (``steps`` in metrics.jsonl is the sum over clients)."""
    out: dict[int, float] = {}
    path = Path(results_dir) / "runs" / run_id / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            m = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "steps" in m:
            out[int(m["round"])] = float(m["steps"]) / max(1, clients)
    return out


def _norm(v: object) -> object:
    return "∅" if v is None or (isinstance(v, float) and math.isnan(v)) else v


def budget_curves(done: pd.DataFrame, curves: pd.DataFrame) -> list[BudgetCurve]:
    """Every (base, + FedX) arm pair with ≥ MIN_ROUNDS evaluated rounds, paired by seed and round."""
    if done.empty or curves.empty:
        return []
    runs = done[done["variant"].isin(["none", "fedx"])].copy()
    keys = [k for k in CURVE_KEYS if k in runs.columns]
    runs["_key"] = runs[keys].apply(lambda r: tuple(_norm(v) for v in r), axis=1)
    out: list[BudgetCurve] = []
    for key, grp in runs.groupby("_key", sort=True):
        base, fx = grp[grp["variant"] == "none"], grp[grp["variant"] == "fedx"]
        seeds = sorted(set(base["seed"]) & set(fx["seed"]))
        if not seeds:
            continue
        # per seed the longest run of each arm (its prefix equals every shorter run)
        pick = {arm: {s: g[g["seed"] == s].sort_values("rounds").iloc[-1] for s in seeds}
                for arm, g in (("none", base), ("fedx", fx))}
        per = []
        for s in seeds:
            b, f = pick["none"][s], pick["fedx"][s]
            cb = curves[curves["run_id"] == b["run_id"]].set_index("round")
            cf = curves[curves["run_id"] == f["run_id"]].set_index("round")
            steps = _steps_per_round(b["results_dir"], b["run_id"], int(b["clients"]))
            for r in sorted(set(cb.index) & set(cf.index)):
                for m in METRICS:
                    per.append({"seed": s, "round": int(r), "metric": m, "base": cb.at[r, m], "fedx": cf.at[r, m],
                                "steps": steps.get(int(r))})
        pf = pd.DataFrame(per).dropna(subset=["base", "fedx"])
        if pf.empty or pf[pf["round"] > 0]["round"].nunique() < MIN_ROUNDS:
            continue
        init = pf[pf["round"] == 0].groupby("metric")["base"].mean().to_dict()
        rows = []
        for (m, r), g in pf[pf["round"] > 0].groupby(["metric", "round"]):
            g = g.sort_values("seed")
            d = paired(dict(zip(g["seed"], g["base"])), dict(zip(g["seed"], g["fedx"])))  # fedx − base
            assert d is not None  # every group holds at least one seed with both arms (dropna above)
            lo, hi = d.ci or (math.nan, math.nan)
            rows.append({"metric": m, "round": int(r), "n": d.n, "base_mean": g["base"].mean(),
                         "fedx_mean": g["fedx"].mean(), "init": init.get(m), "gain": d.mean, "ci_low": lo,
                         "ci_high": hi, "p": math.nan if d.p is None else d.p,
                         "seeds": ",".join(str(s) for s in g["seed"])})
        tab = pd.DataFrame(rows).sort_values(["metric", "round"]).reset_index(drop=True)
        stepmap = pf.dropna(subset=["steps"]).groupby("round")["steps"].mean().sort_index().cumsum()
        tab["local_steps"] = tab["round"].map(stepmap)
        out.append(BudgetCurve(dict(zip(keys, key, strict=True)), tab))
    return out


def first_resolved_round(tab: pd.DataFrame, metric: str, ahead: bool | None = None) -> tuple[int, str] | None:
    """The first round whose gain CI excludes 0 (n ≥ 3) — in either direction, or only ahead/behind — and its
    sign; None when no round resolves."""
    t = tab[(tab["metric"] == metric) & (tab["n"] >= 3)].sort_values("round")
    for r in t.itertuples(index=False):
        if math.isnan(r.ci_low):
            continue
        if (r.ci_low > 0 and ahead is not False) or (r.ci_high < 0 and ahead is not True):
            return int(r.round), "FedX ahead" if r.ci_low > 0 else "FedX behind"
    return None


def curve_title(key: dict) -> str:
    ds = DATASET_DISPLAY.get(key.get("dataset"), key.get("dataset"))
    tl = key.get("train_limit")
    size = f", {int(tl):,} images" if isinstance(tl, (int, float)) and not math.isnan(tl) else ""
    return f"{ds}{size}, E = {key.get('local_epochs')}"


def _fmt(v: float, nd: int = 2, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:+.{nd}f}" if signed else f"{v:.{nd}f}"


def budget_markdown(bcs: list[BudgetCurve], rounds_shown: int = 12) -> str:
    """One Markdown table per curve and metric: base, + FedX, paired gain with its 95 % CI and p, per round."""
    parts = []
    for bc in bcs:
        for m, mname in METRICS.items():
            t = bc.rows[bc.rows["metric"] == m]
            if t.empty:
                continue
            rs = sorted(t["round"])
            if len(rs) > rounds_shown:  # always the first, the last and evenly spaced ones between
                step = max(1, len(rs) // (rounds_shown - 1))
                keep = sorted(set(rs[::step]) | {rs[0], rs[-1]})
                t = t[t["round"].isin(keep)]
            fr = first_resolved_round(bc.rows, m)
            up = first_resolved_round(bc.rows, m, ahead=True)
            init = t["init"].iloc[0]
            head = (f"**{curve_title(bc.key)}, {mname} top-1 (%)**; random-init encoder {_fmt(init)}; "
                    "first round whose gain CI excludes 0: " + (f"{fr[0]} ({fr[1]})" if fr else "none")
                    + "; first round FedX is resolved ahead: " + (str(up[0]) if up else "none") + ".\n\n")
            lines = ["| round | local steps / client | base | + FedX | gain (pp) | 95 % CI | p | n |",
                     "|---:|---:|---:|---:|---:|---|---:|---:|"]
            for r in t.itertuples(index=False):
                ci = f"[{_fmt(r.ci_low, signed=True)}, {_fmt(r.ci_high, signed=True)}]"
                ls = "–" if r.local_steps is None or math.isnan(r.local_steps) else f"{r.local_steps:.0f}"
                lines.append(f"| {r.round} | {ls} | {_fmt(r.base_mean)} | {_fmt(r.fedx_mean)} | "
                             f"{_fmt(r.gain, signed=True)} | {ci} | {_fmt(r.p, 3)} | {r.n} |")
            parts.append(head + "\n".join(lines) + "\n")
    return "\n".join(parts)


def budget_csv(bcs: list[BudgetCurve]) -> pd.DataFrame:
    """Every curve's rows with its key columns: the full per-round table."""
    frames = []
    for bc in bcs:
        f = bc.rows.copy()
        for k, v in bc.key.items():
            f.insert(0, k, v)
        frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def budget_figure(bcs: list[BudgetCurve], stem: Path) -> list[Path]:
    """Top: base and + FedX accuracy vs local steps per client, the random-init floor dotted. Middle and bottom:
    the paired FedX gain with its 95 % CI band vs communication rounds and vs local steps per client; one colour
    per curve (local-epoch setting)."""
    with apply_rc():
        fig, axes = figure(6, nrows=3, height=2.6)
        fig.set_size_inches(6.9, 8.4)
        for j, (m, mname) in enumerate(METRICS.items()):
            top, bot, bot2 = axes[0][j], axes[1][j], axes[2][j]
            for i, bc in enumerate(bcs):
                t = bc.rows[bc.rows["metric"] == m].sort_values("round")
                if t.empty:
                    continue
                c = CURVE_COLOURS[i % len(CURVE_COLOURS)]
                lab = curve_title(bc.key)
                x = t["local_steps"] if t["local_steps"].notna().all() else t["round"]
                top.plot(x, t["base_mean"], color=c, linestyle="-", label=f"{lab}: base")
                top.plot(x, t["fedx_mean"], color=c, linestyle="--", label=f"{lab}: + FedX")
                top.axhline(t["init"].iloc[0], color=INIT_COLOUR, linestyle=":", linewidth=1)
                bot.plot(t["round"], t["gain"], color=c, marker="o", markersize=2.5, label=lab)
                lo, hi = t["ci_low"].fillna(t["gain"]), t["ci_high"].fillna(t["gain"])
                bot.fill_between(t["round"], lo, hi, color=c, alpha=0.18, linewidth=0)
                bot2.plot(x, t["gain"], color=c, marker="o", markersize=2.5, label=lab)
                bot2.fill_between(x, lo, hi, color=c, alpha=0.18, linewidth=0)
            top.set_title(f"{mname}: base (solid), + FedX (dashed)")
            top.set_xlabel("local SGD steps per client (cumulative)")
            top.set_ylabel(f"{mname} top-1 (%)")
            bot.axhline(0.0, color=FEDX_COLOUR, linewidth=0.8)
            bot.set_title(f"{mname}: FedX gain, 95 % CI")
            bot.set_xlabel("communication round")
            bot.set_ylabel("gain (pp)")
            bot2.axhline(0.0, color=FEDX_COLOUR, linewidth=0.8)
            bot2.set_title(f"{mname}: FedX gain vs local steps")
            bot2.set_xlabel("local SGD steps per client (cumulative)")
            bot2.set_ylabel("gain (pp)")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, -0.05))
    return save(fig, stem)

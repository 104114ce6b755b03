"""``build_report``: every table and figure a suite's stored runs support, plus an ``index.md`` that says
under each artefact which runs, settings, protocols, partitions and seeds it rests on — and what could not be
produced and why. Nothing is drawn from inputs that do not exist; missing cells are "—", never 0.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .. import __version__
from ..errors import UserError
from ..paths import SUITES_DIR
from . import budget, figures, tables
from .design import SuiteDesign, detect_sweeps, main_setting, mode_of, suite_design
from .results import (
    DATASET_DISPLAY,
    GROUP_SETTINGS,
    describe_settings,
    export,
    load_angle,
    load_curves,
    require_parquet,
    results_frame,
    settings_key,
    suite_run_ids,
)
from .style import FEDX_COLOUR, METHOD_COLOURS, method_name
from .table1 import render_table1

MANIFEST = ".fedx-report.json"

@dataclass
class Artefact:
    """One table or figure of a report: its files and what it rests on."""

    key: str
    title: str
    kind: str  # "table" | "figure"
    files: list[Path]
    caption: str = ""
    provenance: list[str] = field(default_factory=list)
    markdown: str | None = None


@dataclass
class ReportResult:
    """What ``build_report`` wrote: artefacts, what is absent (and why), and the runs it used."""

    name: str
    out_dir: Path
    index: Path
    artefacts: list[Artefact] = field(default_factory=list)
    absent: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    design: SuiteDesign | None = None  # from the suite record; None: selection inferred from the runs

    @property
    def files(self) -> list[Path]:
        return [self.index] + [f for a in self.artefacts for f in a.files]

    def artefact(self, key: str) -> Artefact | None:
        return next((a for a in self.artefacts if a.key == key), None)


# --------------------------------------------------------------------------- source resolution


def _resolve(source: str | Path, results_dirs: list[str | Path] | None
             ) -> tuple[str, pd.DataFrame, list[str], list[str], SuiteDesign | None]:
    """→ (report name, runs frame, expected run ids (suite order; [] for a results dir), notes, the suite's recorded
    design (None: a results directory, or a record written before records held one))."""
    p = Path(source)
    notes: list[str] = []
    if p.is_dir():
        if not (p / "runs").is_dir():
            raise UserError(f"{p} is a directory but not a results directory (no runs/ inside)")
        df = results_frame(p)
        return p.resolve().name, df, [], [f"Source: results directory `{display_path(p)}` (all {len(df)} runs)."], None
    yaml_path: Path | None = None
    if p.suffix in (".yaml", ".yml"):
        if not p.exists():
            raise UserError(f"suite file not found: {p}")
        yaml_path = p
        doc = yaml.safe_load(p.read_text()) or {}
        name = str(doc.get("name") or p.stem)
    else:
        name = str(source)
        cand = SUITES_DIR / f"{name}.yaml"
        yaml_path = cand if cand.exists() else None
    roots = [Path(r) for r in (results_dirs or ["results"])]
    ids = suite_run_ids(name, roots)
    if not ids and yaml_path is not None:
        try:  # no suite record yet (never run here): the ids are config hashes of the YAML's runs
            from ..config import load_suite

            ids = [r.run_id for r in load_suite(yaml_path).runs]
            notes.append(f"No suite record `suites/{name}.json` in {', '.join(map(display_path, roots))}: run ids "
                         f"taken from {display_path(yaml_path)}.")
        except Exception as e:  # noqa: BLE001 - report what we can; the YAML may need newer code
            notes.append(f"Could not expand {display_path(yaml_path)} ({type(e).__name__}: {e}).")
    if not ids:
        raise UserError(f"no runs recorded for suite {name!r} under {', '.join(map(str, roots))} "
                        "(run it first, or pass a results directory)")
    existing = [r for r in roots if (r / "runs").is_dir()]
    df = results_frame(*existing) if existing else pd.DataFrame()
    if len(df):
        df = df[df["run_id"].isin(ids)]
    notes.insert(0, f"Source: suite `{name}`" + (f" ({display_path(yaml_path)})" if yaml_path else "")
                 + f", results in {', '.join(f'`{display_path(r)}`' for r in roots)}.")
    design = suite_design(name, roots)
    if design is not None:
        keys = design.setting_keys()
        varied = f"its settings vary in {', '.join(f'`{k}`' for k in keys)}" if keys else "one setting"
        notes.append(f"Design read from the suite record (base, cases, grid; {varied}): Table 1 "
                     "and the curves use the base's setting, sensitivity sections the settings it varies.")
    return name, df, ids, notes, design


def display_path(p: str | Path) -> str:
    """A path as report files show it: relative to the working directory or the fedx-bench checkout when under
    them, else ``<abs>/<name>`` — never an absolute machine path."""
    q = Path(p)
    if not q.is_absolute():
        return q.as_posix()
    for base in (Path.cwd(), SUITES_DIR.parent):
        try:
            return q.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return f"<abs>/{q.name}"


def _dedupe(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run id (the same run copied into two results dirs counts once; a finished copy wins)."""
    if df.empty:
        return df
    order = df["state"].map(lambda s: 0 if s == "done" else 1)
    return df.assign(_o=order).sort_values(["_o"], kind="stable").drop_duplicates("run_id").drop(columns="_o")


# --------------------------------------------------------------------------- provenance


PROBE_PROTOCOLS = ("linear_probe", "knn", "partition")


def provenance(runs: pd.DataFrame, cell_cols: tuple[str, ...] = ("method", "variant", "dataset"),
               protocols: tuple[str, ...] = PROBE_PROTOCOLS) -> list[str]:
    """Markdown lines under an artefact: settings, the versions of the protocols it shows, short partition hashes,
    seeds per cell, and a warning when ± FedX runs of one seed and setting do not share a partition."""
    if runs.empty:
        return ["No runs."]
    lines = []
    by_ds = []
    for d in sorted(set(runs["dataset"]), key=tables.dataset_sort_key):
        at = runs[runs["dataset"] == d]
        descs = list(dict.fromkeys(describe_settings(r) for _, r in at.iterrows()))
        notes = {n for n in at["data_notes"].dropna() if n}
        shown = "; ".join(f"`{x}`" for x in descs[:4]) + (f"; … ({len(descs) - 4} more)" if len(descs) > 4 else "")
        by_ds.append(f"{DATASET_DISPLAY.get(d, d)}: {shown}" + (" — data: " + "; ".join(sorted(notes))[:200]
                                                                 if notes else ""))
    lines.append("**Configuration** — " + " | ".join(by_ds))
    if "setting_id" in runs.columns:
        sids = list(dict.fromkeys(str(x) for x in runs["setting_id"].dropna()))
        lines.append("**Setting ids** — " + ", ".join(f"`{x}`" for x in sids[:8])
                     + (f", … ({len(sids) - 8} more; see runs.csv)" if len(sids) > 8 else ""))
    if "code_version" in runs.columns:
        cv = runs["code_version"].dropna().value_counts()
        lines.append(f"**Code versions** — {len(cv)}: " + ", ".join(f"`{k}` ({v})" for k, v in list(cv.items())[:6])
                     + (", …" if len(cv) > 6 else ""))
    protos = sorted({p.strip() for s in runs["protocol_versions"].dropna() for p in str(s).split(",")
                     if p.strip() and p.strip().split("@")[0] in protocols})
    lines.append("**Protocols** — " + (", ".join(f"`{p}`" for p in protos) if protos else "—"))
    parts, warn = [], []
    keycols = [c for c in GROUP_SETTINGS if c in runs.columns]
    for (d, seed), at in runs.groupby(["dataset", "seed"], sort=True, dropna=False):
        hashes = at["partition_sha256"].dropna()
        uniq = list(dict.fromkeys(str(h)[:8] for h in hashes))
        parts.append(f"{DATASET_DISPLAY.get(d, d)} s{seed}: " + ("/".join(uniq) if uniq else "—"))
        for _, g in at.groupby(at[keycols].apply(lambda r: settings_key(r, keycols), axis=1), sort=False):
            if g["partition_sha256"].dropna().nunique() > 1:
                warn.append(f"{DATASET_DISPLAY.get(d, d)} seed {seed}")
    shown = ", ".join(parts[:12]) + (f", … (+{len(parts) - 12}; see runs.csv)" if len(parts) > 12 else "")
    lines.append("**Partitions** (sha256, first 8; several per seed = several settings) — " + shown)
    if warn:
        lines.append("**Warning** — runs with the same seed and setting have different partitions (± FedX not "
                     "like-for-like): " + ", ".join(warn))
    counts = runs.groupby([*cell_cols, *keycols], dropna=False)["seed"].nunique()
    lo, hi = int(counts.min()), int(counts.max())
    lines.append(f"**Seeds per cell** — {lo}" + (f"–{hi}" if hi != lo else "") + f" ({len(runs)} runs, "
                 f"{len(counts)} cells; run ids in [runs.csv](runs.csv))")
    return lines


# --------------------------------------------------------------------------- the report


def _write_table(out: Path, stem: str, md: str, tex: str, csv: str) -> list[Path]:
    files = []
    for suffix, text in ((".md", md), (".tex", tex), (".csv", csv)):
        f = out / f"{stem}{suffix}"
        f.write_text(text)
        files.append(f)
    return files


def _clean_previous(out: Path) -> None:
    """Delete what an earlier build wrote (listed in its manifest) so that stale artefacts never linger."""
    man = out / MANIFEST
    if not man.exists():
        return
    try:
        old = json.loads(man.read_text()).get("files", [])
    except json.JSONDecodeError:
        old = []
    for f in old:
        p = out / f
        if p.is_file() and p.resolve().parent == out.resolve():
            p.unlink()


def build_report(source: str | Path, out_root: str | Path = "reports",
                 results_dirs: list[str | Path] | None = None) -> ReportResult:
    """Build ``<out_root>/<name>/``: Table 1, learning curves, ablation, sensitivity, angle and semi-supervised
    artefacts (only those whose inputs exist) and ``index.md``. ``source``: a suite name or YAML path (its runs
    from ``<results_dir>/suites/<name>.json``, results_dirs default ["results"]) or a results directory."""
    name, df, expected, notes, design = _resolve(source, results_dirs)
    df = _dedupe(df)
    require_parquet()  # before anything is cleaned: a missing package never deletes a committed export
    out = Path(out_root) / name
    out.mkdir(parents=True, exist_ok=True)
    _clean_previous(out)
    res = ReportResult(name=name, out_dir=out, index=out / "index.md", notes=notes, runs=df, design=design)

    states = df["state"].value_counts().to_dict() if len(df) else {}
    missing = [i for i in expected if len(df) == 0 or i not in set(df["run_id"])]
    status = ", ".join(f"{n} {s}" for s, n in sorted(states.items(), key=lambda kv: str(kv[0])))
    res.notes.append(f"Runs: {len(expected) or len(df)} " + ("expected" if expected else "found") + "; "
                     + (status or "none stored") + (f"; {len(missing)} not in the store" if missing else "") + ".")
    if len(df) and (df["state"] != "done").any():
        res.notes.append("Only finished runs (state done) enter tables and figures.")
    done = df[df["state"] == "done"].copy() if len(df) else df

    if len(df):
        portable = df.assign(results_dir=df["results_dir"].map(display_path))
        res.artefacts.append(Artefact("runs", "All runs (one row per run)", "data", export(portable, out / "runs"),
                                      "Every run of this report with its settings, hashes and Last/Best values."))

    _table1(res, done, out)
    _setting_tables(res, done, out)
    curves = load_curves(done) if len(done) else pd.DataFrame()
    _learning_curves(res, done, curves, out)
    _budget_report(res, done, curves, out)
    _ablation(res, done, curves, out)
    _sensitivity(res, done, out)
    _angle(res, done, out)
    _semi(res, done, out)
    _write_index(res)
    (out / MANIFEST).write_text(json.dumps({"files": sorted(p.name for p in res.files)}, indent=1) + "\n")
    return res


def _table1(res: ReportResult, done: pd.DataFrame, out: Path) -> None:
    pair = done[done["variant"].isin(["none", "fedx"])] if len(done) else done
    if pair.empty:
        res.absent["Table 1"] = "no finished run of a base method or its + FedX variant"
        return
    main, excluded = main_setting(pair, res.design)
    kw: dict[str, Any] = {"full": True, "variants": ["none", "fedx"]}
    md = render_table1(main, "md", **kw)
    files = _write_table(out, "table1", md, render_table1(main, "latex", **kw), render_table1(main, "csv", **kw))
    cap = ("Table 1 layout: the paper's ten rows × dataset × Last/Best. Each cell: ours mean ± std (n seeds) / "
           "paper (Δ pp); bold = the better of each ± FedX pair (ours). — = not run here.")
    prov = provenance(main)
    if len(excluded):
        prov.append(f"**Excluded** — {len(excluded)} finished runs in other settings (per dataset, Table 1 uses "
                    "the setting with the most runs; see the sensitivity sections and runs.csv).")
    res.artefacts.append(Artefact("table1", "Table 1: linear-probe top-1, ours vs the paper", "table", files, cap,
                                  prov, md))
    _fedx_effect(res, main, out)


def _setting_tables(res: ReportResult, done: pd.DataFrame, out: Path) -> None:
    """Every setting of the report as its own Table-1-style table (a cell never pools settings)."""
    from .settings import render_setting_tables, setting_tables

    if not len(done):
        return
    tabs = setting_tables(done)
    if len(tabs) < 2:
        return
    md = render_setting_tables(done, "md", tables=tabs)
    files = _write_table(out, "settings", md, render_setting_tables(done, "latex", tables=tabs),
                         render_setting_tables(done, "csv", tables=tabs))
    res.artefacts.append(Artefact("settings", f"All {len(tabs)} settings, one table each", "table", files,
                                  "Each table holds the runs of one setting id per dataset column.", [], md))


def _fedx_effect(res: ReportResult, main: pd.DataFrame, out: Path) -> None:
    """Per base method: does it beat the random-init encoder, and does FedX help it (paired by seed)?"""
    for metric, stem, label in (("probe", "fedx_effect", "linear probe"), ("knn", "fedx_effect_knn", "kNN")):
        if f"{metric}_last" not in main.columns or main[f"{metric}_last"].isna().all():
            continue
        t = tables.fedx_effect_table(main, metric)
        md = t.render("md")
        files = _write_table(out, stem, md, t.render("latex"), t.render("csv"))
        res.artefacts.append(Artefact(stem, f"FedX effect per base method ({label}): learns? FedX helps?", "table",
                                      files, "", provenance(main), md))


def _learning_curves(res: ReportResult, done: pd.DataFrame, curves: pd.DataFrame, out: Path) -> None:
    pair = done[done["variant"].isin(["none", "fedx"])] if len(done) else done
    main, _ = main_setting(pair, res.design)
    if main.empty:
        res.absent["Learning curves"] = "no finished run of a base method or its + FedX variant"
        return
    made = False
    for m in sorted(set(main["method"]), key=tables.method_sort_key):
        at = main[main["method"] == m]
        ds_ok = [d for d in set(at["dataset"]) if {"none", "fedx"} <= set(at[at["dataset"] == d]["variant"])]
        if not ds_ok:
            res.absent[f"Learning curves: {method_name(m)}"] = "no dataset has both the base and + FedX runs"
            continue
        at = at[at["dataset"].isin(ds_ok)]
        c = curves[curves["run_id"].isin(at["run_id"])] if len(curves) else curves
        n_eval = c[c["round"] > 0].groupby("run_id")["round"].nunique().max() if len(c) else 0
        if not n_eval or n_eval < 3:
            res.absent[f"Learning curves: {method_name(m)}"] = (
                f"fewer than 3 evaluated rounds per run (eval.interval too coarse; found {int(n_eval or 0)})")
            continue
        files = figures.learning_curves(curves, at, m, out / f"curves_{m}")
        cap = (f"{method_name(m)} vs + FedX: linear-probe top-1 (%) of the global model after each round; mean over "
               "seeds with a ±1 std band; dashed: the random-init encoder (round 0) under the same probe. "
               "Crosses (paper scale only): the paper's curve, digitised ±0.5 pp, paper round i drawn at our "
               "round i+1.")
        res.artefacts.append(Artefact(f"curves_{m}", f"Learning curves: {method_name(m)} vs + FedX", "figure",
                                      files, cap, provenance(at)))
        made = True
    if not made and "Learning curves" not in res.absent and not any(k.startswith("Learning") for k in res.absent):
        res.absent["Learning curves"] = "no method with both variants"


def _ablation(res: ReportResult, done: pd.DataFrame, curves: pd.DataFrame, out: Path) -> None:
    abl = done[~done["variant"].isin(["none", "fedx"])] if len(done) else done
    if abl.empty:
        res.absent["Ablation"] = "no finished run of a FedX ablation variant (fedx-no-relational, ...)"
        return
    keep = []
    for (m, d), a in abl.groupby(["method", "dataset"], sort=False):
        key = mode_of(a["setting_id"])  # one setting per block: a cell never pools settings
        same = done[(done["method"] == m) & (done["dataset"] == d)]
        keep += list(same.index[same["setting_id"] == key])
    runs = done.loc[keep]
    t = tables.ablation_table(runs)
    md = t.render("md")
    files = _write_table(out, "ablation", md, t.render("latex"), t.render("csv"))
    res.artefacts.append(Artefact("ablation", "Ablation (component analysis): table", "table", files, "",
                                  provenance(runs), md))
    c = curves[curves["run_id"].isin(runs["run_id"])] if len(curves) else curves
    n_eval = c[c["round"] > 0].groupby("run_id")["round"].nunique().max() if len(c) else 0
    if not n_eval or n_eval < 3:
        res.absent["Ablation curves"] = f"fewer than 3 evaluated rounds per run (found {int(n_eval or 0)})"
        return
    files = figures.ablation_curves(curves, runs, out / "ablation_curves")
    cap = ("Component analysis: linear-probe top-1 (%) per round for FedX with each part removed and the base "
           "method; mean over seeds, ±1 std band; dashed: random-init encoder. Legend names follow the paper's "
           "ablation figure (w/o projection head = fedx-no-head).")
    res.artefacts.append(Artefact("ablation_curves", "Ablation (component analysis): learning curves", "figure",
                                  files, cap, provenance(runs)))


def _budget_report(res: ReportResult, done: pd.DataFrame, curves: pd.DataFrame, out: Path) -> None:
    """FedX gain vs training budget, for ± FedX pairs evaluated at ≥ 5 rounds (see reports/budget.py)."""
    bcs = budget.budget_curves(done, curves) if len(done) and len(curves) else []
    if not bcs:
        res.absent["Gain vs training budget"] = (f"no ± FedX pair evaluated at ≥ {budget.MIN_ROUNDS} rounds")
        return
    md = budget.budget_markdown(bcs)
    full = budget.budget_csv(bcs)
    files = [out / "budget.md", out / "budget.csv"]
    files[0].write_text(md)
    full.to_csv(files[1], index=False)
    runs = done[done["variant"].isin(["none", "fedx"])]
    prov = provenance(runs, ("method", "variant", "dataset", "local_epochs"))
    res.artefacts.append(Artefact("budget", "FedX gain vs training budget: table", "table", files,
                                  "Per evaluated round: base and + FedX mean over seeds, the FedX gain paired by "
                                  "seed with its Student-t 95 % CI and paired t-test p; budget.csv has every round.",
                                  prov, md))
    figs = budget.budget_figure(bcs, out / "budget")
    cap = ("Top: base (solid) and + FedX (dashed) top-1 vs cumulative local SGD steps per client; dotted: the "
           "random-init encoder under the same protocol. Middle and bottom: the FedX gain (pp) paired by seed vs "
           "communication round and vs local steps, band = 95 % CI (Student t). One colour per local-epoch setting.")
    res.artefacts.append(Artefact("budget_fig", "FedX gain vs training budget: figure", "figure", figs, cap, prov))


def _sensitivity(res: ReportResult, done: pd.DataFrame, out: Path) -> None:
    sweeps = detect_sweeps(done, res.design) if len(done) else []
    if not sweeps:
        res.absent["Sensitivity"] = ("no swept setting: no finished ± FedX runs that differ only in clients, local "
                                     "epochs, data fraction, β/IID or rounds")
        return
    for s in sweeps:
        t = tables.sensitivity_table(s.points, s.label, s.fmt)
        if s.desc:
            t.caption += f" Series: {s.desc}."
        md = t.render("md")
        stem = f"sensitivity_{s.tag}"
        files = _write_table(out, stem, md, t.render("latex"), t.render("csv"))
        title = f"Sensitivity: {s.label.lower()}" + (f" ({s.desc})" if s.desc else "")
        ds = ", ".join(DATASET_DISPLAY.get(d, d) for d in sorted(set(s.points["dataset"])))
        prov = provenance(s.points, ("method", "variant", "dataset", "x"))
        res.artefacts.append(Artefact(stem, f"{title}, {ds}: table", "table", files, "", prov, md))
        figs = figures.sensitivity(s.points, s.label, s.fmt, out / stem, subtitle=s.desc)
        cap = (f"Left: final-round linear-probe top-1 (%) of the base method and + FedX vs {s.label.lower()}; "
               "dashed: the random-init encoder under the same probe (the learning-signal floor); "
               "right: FedX gain (pp) paired by seed; mean ± std over seeds (error bars).")
        res.artefacts.append(Artefact(stem + "_fig", f"{title}, {ds}: figure", "figure", figs, cap, prov))


def _angle(res: ReportResult, done: pd.DataFrame, out: Path) -> None:
    if "angle_round" not in done.columns or done["angle_round"].isna().all():
        res.absent["Angle analysis"] = "no run has angle.json (protocol angle@v1 not run for these runs)"
        return
    runs, _ = main_setting(done[done["angle_round"].notna()], res.design)
    t = tables.angle_table(runs)
    md = t.render("md")
    files = _write_table(out, "angle", md, t.render("latex"), t.render("csv"))
    res.artefacts.append(Artefact("angle", "Angle analysis: drift and intra/inter-class angles", "table", files, "",
                                  provenance(runs, protocols=("angle", "partition")), md))
    for m in sorted(set(done["method"]), key=tables.method_sort_key):
        at = runs[(runs["method"] == m) & runs["variant"].isin(["none", "fedx"])]
        if at.empty:
            res.absent[f"Angle distributions: {method_name(m)}"] = "none of its runs has angle.json"
            continue
        if set(at["variant"]) != {"none", "fedx"}:
            res.absent[f"Angle distributions: {method_name(m)}"] = "angle.json only for one of base / + FedX"
            continue
        recs = {}
        for r in at.itertuples(index=False):
            a = load_angle(r.results_dir, r.run_id)
            if a and a.get("rounds"):
                recs[r.run_id] = a["rounds"][str(int(r.angle_round))]
        files = figures.angle_distributions(recs, at, m, out / f"angle_{m}")
        cap = (f"Local-global drift of {method_name(m)} with and without FedX (angle@v1, benchmark-defined): top, "
               "distribution of arccos(ẑ_k·ẑ_G) over test images and clients (% of images per bin, mean over seeds; "
               "dashed = mean angle); bottom, mean drift on classes frequent vs rare in the client's data "
               "(±std over seeds).")
        res.artefacts.append(Artefact(f"angle_{m}", f"Angle distributions: {method_name(m)} vs + FedX", "figure",
                                      files, cap, provenance(at, protocols=("angle", "partition"))))


def _semi(res: ReportResult, done: pd.DataFrame, out: Path) -> None:
    if not len(done) or not tables.semi_fractions(done):
        res.absent["Semi-supervised"] = "no run has semi_supervised results in eval.json (semi_supervised@v1 not run)"
        return
    fr = tables.semi_fractions(done)
    runs, _ = main_setting(done[done[[f"semi_{f}_top1" for f in fr]].notna().any(axis=1)], res.design)
    if runs.empty:  # the columns exist because other runs in the same store have them
        res.absent["Semi-supervised"] = "no run of this report has semi_supervised results (semi_supervised@v1 not run)"
        return
    t = tables.semi_table(runs)
    md = t.render("md")
    files = _write_table(out, "semi_supervised", md, t.render("latex"), t.render("csv"))
    res.artefacts.append(Artefact("semi_supervised", "Semi-supervised fine-tuning (1% / 10% labels)", "table", files,
                                  "", provenance(runs, protocols=("semi_supervised", "partition")), md))


def _write_index(res: ReportResult) -> None:
    lines = [f"# Report: {res.name}", ""]
    lines += [f"- {n}" for n in res.notes]
    lines.append(f"- Generated by fedx-bench {__version__} on {time.strftime('%Y-%m-%d %H:%M %Z')}.")
    palette = ", ".join(f"{method_name(m)} `{c}`" for m, c in METHOD_COLOURS.items())
    lines.append(f"- Colours in every figure: {palette}; + FedX `{FEDX_COLOUR}`; dashed black = random-init encoder.")
    lines += ["", "## Contents", ""]
    for a in res.artefacts:
        if a.kind != "data":
            lines.append(f"- [{a.title}](#{_anchor(a.title)})")
    if res.absent:
        lines.append("- [Not produced](#not-produced)")
    for a in res.artefacts:
        if a.kind == "data":
            continue
        lines += ["", f"## {a.title}", ""]
        links = " · ".join(f"[{f.suffix[1:].upper() if f.suffix != '.tex' else 'LaTeX'}]({f.name})" for f in a.files)
        if a.kind == "figure":
            png = next((f for f in a.files if f.suffix == ".png"), None)
            if png:
                lines += [f"![{a.title}]({png.name})", ""]
        lines += [f"Files: {links}", ""]
        if a.markdown:
            lines += [a.markdown.rstrip(), ""]
        if a.caption:
            lines += [a.caption, ""]
        lines += [f"- {p}" for p in a.provenance]
    if res.absent:
        lines += ["", "## Not produced", ""]
        lines += [f"- **{k}**: {v}." for k, v in res.absent.items()]
    data = next((a for a in res.artefacts if a.kind == "data"), None)
    if data:
        lines += ["", "## Data", "", "All runs of this report: " + " · ".join(f"[{f.name}]({f.name})"
                                                                        for f in data.files)]
    res.index.write_text("\n".join(lines) + "\n")


def _anchor(title: str) -> str:
    """GitHub-style heading anchor."""
    keep = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return keep.replace(" ", "-")

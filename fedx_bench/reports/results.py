"""Stored runs as one pandas DataFrame (one row per run), per-round curves, and the paper's reference numbers.

Everything here reads only the run store (``results/runs/<id>/...``) and ``paper_numbers.json``: reports
must be reproducible from stored files alone, without the training code or the data.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError
from ..provenance import code_version
from ..setting import setting_id
from ..store import RunStore, read_json

PAPER_FILE = Path(__file__).with_name("paper_numbers.json")

DATASET_ORDER = ["cifar10", "svhn", "fmnist", "synthetic"]
DATASET_DISPLAY = {"cifar10": "CIFAR-10", "svhn": "SVHN", "fmnist": "F-MNIST", "synthetic": "Synthetic"}
PAPER_DATASETS = ["cifar10", "svhn", "fmnist"]

# Settings that make two runs' numbers comparable (or not). ``data_source`` is per dataset (JPEG copy vs
# torchvision pixels), the others are federation/optimisation/model choices.
KEY_SETTINGS = ["backbone", "clients", "partition", "beta", "rounds", "local_epochs", "train_limit", "fraction",
                "data_source"]
# Everything that groups runs into one "setting" inside a report (KEY_SETTINGS plus secondary knobs).
GROUP_SETTINGS = KEY_SETTINGS + ["width", "sample_fraction", "batch_size", "random_batch_size", "lr", "augment",
                                 "probe_epochs"]


@lru_cache(maxsize=1)
def _paper() -> dict[str, Any]:
    return json.loads(PAPER_FILE.read_text())


PAPER = _paper()


def paper_value(method: str, fedx: bool, dataset: str, column: str) -> float | None:
    """Paper Table 1 value (linear-probe top-1, %) for ``column`` in {"last", "best"}, or None."""
    cell = PAPER["table1"].get(method, {}).get("fedx" if fedx else "base", {}).get(dataset)
    if cell is None:
        return None
    return float(cell[0 if column == "last" else 1])


def paper_cells() -> pd.DataFrame:
    """Every reported/digitised number of the paper with its provenance (table/figure, row, column)."""
    rows = [dict(c, kind="table", reference="Table 1", variant="fedx" if c["fedx"] else "none")
            for c in PAPER["table1_cells"]]
    abl = PAPER["ablation_digitised"]
    for v, rec in abl.items():
        if not isinstance(rec, dict) or "last" not in rec:
            continue
        for col in ("last", "best"):
            rows.append({"method": abl.get("method", "simclr"), "fedx": True, "variant": v,
                         "dataset": abl.get("dataset", "cifar10"), "column": col, "value": rec[col],
                         "kind": "digitised ±0.5", "reference": "ablation figure", "source": rec.get("source", "")})
    lc = PAPER["learning_curves_digitised"]
    for side in ("base", "fedx"):
        for ds, vals in lc[side].items():
            for r, v in zip(lc["rounds"], vals):
                rows.append({"method": lc["method"], "fedx": side == "fedx", "variant": "fedx" if side == "fedx"
                             else "none", "dataset": ds, "column": f"round {r}", "value": v,
                             "kind": "digitised ±0.5", "reference": "learning-curve figure", "source": lc["source"]})
    return pd.DataFrame(rows)


def ablation_paper(variant: str, method: str = "simclr", dataset: str = "cifar10") -> dict[str, Any] | None:
    """The digitised ablation value (last/best) for a variant, only for the method/dataset the figure shows."""
    abl = PAPER["ablation_digitised"]
    if method != abl.get("method", "simclr") or dataset != abl.get("dataset", "cifar10"):
        return None
    rec = abl.get(variant)
    return rec if isinstance(rec, dict) and "last" in rec else None


def _num(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _semi_columns(ev: dict[str, Any]) -> dict[str, Any]:
    semi = ev.get("semi_supervised")
    if not isinstance(semi, dict):
        return {}
    out: dict[str, Any] = {"semi_protocol": semi.get("protocol"), "semi_round": semi.get("round"),
                           "semi_seed": semi.get("seed")}
    for frac, res in sorted((semi.get("results") or {}).items(), key=lambda kv: float(kv[0])):
        for k in ("top1", "top5", "n_labelled"):
            out[f"semi_{float(frac):g}_{k}"] = (res or {}).get(k)
    for frac, res in (semi.get("init") or {}).items():  # same fine-tune from the random-init encoder
        out[f"semi_init_{float(frac):g}_top1"] = (res or {}).get("top1")
    return out


def _angle_columns(angle: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(angle, dict) or not angle.get("rounds"):
        return {}
    r = max(angle["rounds"], key=lambda k: int(k))
    rec = angle["rounds"][r] or {}
    drift = rec.get("drift") or {}
    cs = rec.get("class_structure") or {}
    pooled = drift.get("pooled") or {}
    return {
        "angle_protocol": angle.get("protocol"),
        "angle_round": int(r),
        "angle_drift_mean": pooled.get("mean"),
        "angle_drift_median": pooled.get("median"),
        "angle_frequent_mean": (drift.get("frequent") or {}).get("mean"),
        "angle_rare_mean": (drift.get("rare") or {}).get("mean"),
        "angle_intra": cs.get("intra"),
        "angle_inter": cs.get("inter"),
        "angle_gap": cs.get("gap"),
    }


def protocol_versions(spec_protocols: dict[str, Any] | None, extra: Iterable[str | None] = ()) -> str:
    """``knn@v1, linear_probe@fedx-v1, partition@v1`` (+ semi/angle protocols when stored): one string."""
    items = {f"{k}@{v}" for k, v in (spec_protocols or {}).items()}
    items |= {e for e in extra if e}
    return ", ".join(sorted(items))


def _row(rec: dict[str, Any]) -> dict[str, Any]:
    spec = rec["spec"]
    cfg = spec.get("config", {})
    fx = cfg.get("fedx", {})
    ev_all = rec.get("eval") or {}
    ev = ev_all.get("metrics", {})
    fed = cfg.get("federation", {})
    data = cfg.get("data", {})
    optim = cfg.get("optim", {})
    evcfg = cfg.get("eval", {})
    partition = fed.get("partition")
    agg = fed.get("aggregator", "fedavg")
    beta = fed.get("beta") if partition == "dirichlet" else None
    row: dict[str, Any] = {
        "run_id": rec["run_id"],
        "results_dir": rec["results_dir"],
        "state": rec["status"].get("state"),
        "label": spec.get("label"),
        "method": cfg.get("method") if agg == "fedavg" else f"{cfg.get('method')}@{agg}",
        "aggregator": agg,
        "fedx": bool(fx.get("enabled")),
        "variant": fx.get("variant") if fx.get("enabled") else "none",
        "dataset": data.get("name"),
        "data_source": (spec.get("dataset") or {}).get("source"),
        "data_notes": (spec.get("dataset") or {}).get("notes", ""),
        "train_limit": data.get("train_limit"),
        "fraction": data.get("fraction"),
        "seed": cfg.get("seed"),
        "backbone": cfg.get("model", {}).get("backbone"),
        "width": cfg.get("model", {}).get("width"),
        "clients": fed.get("clients"),
        "beta": beta,
        "partition": partition,
        "heterogeneity": "IID" if partition == "iid" else (f"β={beta:g}" if beta is not None else None),
        "beta_or_inf": math.inf if partition == "iid" else beta,
        "rounds": fed.get("rounds"),
        "local_epochs": fed.get("local_epochs"),
        "sample_fraction": fed.get("sample_fraction"),
        "batch_size": optim.get("batch_size"),
        "random_batch_size": optim.get("random_batch_size"),
        "lr": optim.get("lr"),
        "augment": spec.get("augment") or data.get("augment"),
        "eval_interval": evcfg.get("interval"),
        "probe_epochs": evcfg.get("probe_epochs"),
        "partition_sha256": spec.get("partition_sha256"),
        "protocols": json.dumps(spec.get("protocols", {}), sort_keys=True),
        "suite": spec.get("suite"),
        "wall_seconds": ev_all.get("wall_seconds"),
        "peak_rss_mb": ev_all.get("peak_rss_mb"),
        "device": (rec.get("env") or {}).get("device", {}).get("name"),
        "git_commit": (rec.get("env") or {}).get("git_commit"),
        "setting_id": spec.get("setting_id") or setting_id(cfg),
        "code_version": code_version(rec.get("env")),
        "torch_threads": ((rec.get("env") or {}).get("device") or {}).get("torch_threads"),
    }
    for key, short in (("linear_probe_top1", "probe"), ("knn_top1", "knn"), ("linear_probe_top5", "probe_top5")):
        m = ev.get(key, {})
        for col in ("last", "best", "init"):
            row[f"{short}_{col}"] = m.get(col)
        if short == "probe":
            row["probe_last_round"] = m.get("last_round")
            row["probe_best_round"] = m.get("best_round")
    row.update(_semi_columns(ev_all))
    row.update(_angle_columns(rec.get("angle")))
    row["protocol_versions"] = protocol_versions(spec.get("protocols"),
                                                 (row.get("semi_protocol"), row.get("angle_protocol")))
    return row


class CorruptRunWarning(UserWarning):
    """A stored run was skipped because one of its files is unreadable (named in the message)."""


def _read_checked(path: Path, required: bool) -> tuple[Any, str | None]:
    """(parsed JSON or None, problem or None): a missing optional file is no problem, an unparsable one is."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, ("missing" if required else None)
    except OSError as e:
        return None, f"unreadable ({e.strerror})"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as e:
        return None, f"corrupt or truncated JSON ({e.msg} at line {e.lineno})"


def _metrics_problem(path: Path) -> str | None:
    if not path.exists():
        return "missing"
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError:
                return f"corrupt or truncated line {i}"
    return None


def load_run_records(*roots: str | Path) -> list[dict[str, Any]]:
    """Records (spec, eval, status, env, angle) of every run under the roots. A run with a corrupt, truncated or
    (for a finished run) missing file is skipped with a ``CorruptRunWarning`` naming the file; the rest load."""
    out = []
    for root in roots:
        for rd in RunStore(root).run_dirs():
            rec: dict[str, Any] = {"run_id": rd.run_id, "results_dir": str(root)}
            problem: tuple[str, str] | None = None
            status, err = _read_checked(rd.file("status.json"), False)
            if err:
                problem = ("status.json", err)
            status = status if isinstance(status, dict) else {"state": "pending"}
            done = status.get("state") == "done"
            for name, key, required in (("spec.json", "spec", True), ("eval.json", "eval", done),
                                        ("env.json", "env", False), ("angle.json", "angle", False)):
                val, err = _read_checked(rd.file(name), required)
                if err and problem is None:
                    problem = (name, err)
                rec[key] = val
            if problem is None and done:
                err = _metrics_problem(rd.file("metrics.jsonl"))
                if err:
                    problem = ("metrics.jsonl", err)
            if problem is None and not isinstance(rec["spec"].get("config") if isinstance(rec["spec"], dict)
                                                  else None, dict):
                problem = ("spec.json", "no config")
            if problem is not None:
                path = Path(root) / "runs" / rd.run_id / problem[0]
                warnings.warn(f"skipped run {rd.run_id}: {path}: {problem[1]}", CorruptRunWarning, stacklevel=2)
                continue
            rec["status"] = status
            rec["env"] = rec["env"] or {}
            out.append(rec)
    return out


def _load(*roots: str | Path) -> list[dict[str, Any]]:
    return load_run_records(*roots)


def suite_run_ids(suite: str, roots: Iterable[str | Path]) -> list[str]:
    """Run ids recorded for a suite (``<root>/suites/<suite>.json``), in suite order, over all roots."""
    ids: list[str] = []
    for root in roots:
        rec = read_json(Path(root) / "suites" / f"{suite}.json")
        for rid in (rec or {}).get("run_ids", []):
            if rid not in ids:
                ids.append(rid)
    return ids


def results_frame(*roots: str | Path, suite: str | None = None) -> pd.DataFrame:
    """One row per run (done or not) under the given results directories, optionally one suite's runs."""
    recs = _load(*roots)
    if suite is not None:
        ids = set(suite_run_ids(suite, roots))
        recs = [r for r in recs if r["run_id"] in ids]
    rows = [_row(r) for r in recs]
    cols = list(dict.fromkeys(k for r in rows for k in r)) if rows else _EMPTY_COLUMNS
    return pd.DataFrame(rows, columns=cols)


_EMPTY_COLUMNS = ["run_id", "results_dir", "state", "label", "method", "fedx", "variant", "dataset", "data_source",
                  "data_notes", "train_limit", "fraction", "seed", "backbone", "width", "clients", "beta", "partition",
                  "heterogeneity", "beta_or_inf", "rounds", "local_epochs", "sample_fraction", "batch_size",
                  "random_batch_size", "lr", "augment", "eval_interval", "probe_epochs", "partition_sha256",
                  "protocols", "suite", "wall_seconds", "peak_rss_mb", "device", "git_commit", "setting_id",
                  "code_version", "torch_threads", "probe_last",
                  "probe_best", "probe_init", "probe_last_round", "probe_best_round", "knn_last", "knn_best",
                  "knn_init", "probe_top5_last", "probe_top5_best", "probe_top5_init", "protocol_versions"]


def collect(results_dirs: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """All runs of any results directories in one table (one row per run and directory; columns of
    ``results_frame`` plus semi-supervised ``semi_*`` and angle ``angle_*`` summaries where stored)."""
    dirs = [results_dirs] if isinstance(results_dirs, (str, Path)) else list(results_dirs)
    frames = [results_frame(d) for d in dirs]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=_EMPTY_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def require_parquet() -> None:
    """Fail before anything is written when pyarrow is missing (it is a dependency of fedx-bench)."""
    if not parquet_available():
        raise UserError("pyarrow is not installed (a dependency of fedx-bench: pip install 'pyarrow>=12'); "
                        "nothing was written")


def export(df: pd.DataFrame, path: str | Path) -> list[Path]:
    """Write ``df`` to ``<path>.parquet`` (pyarrow, a required dependency: Parquet is the documented export)
    and ``<path>.csv``. ``path`` may carry either suffix or none. Returns the written files. Without pyarrow
    nothing is written (a UserError), so no earlier export is ever replaced by a partial one."""
    require_parquet()
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".parquet", ".csv") else p
    stem.parent.mkdir(parents=True, exist_ok=True)
    pq = stem.with_name(stem.name + ".parquet")
    _parquet_ready(df).to_parquet(pq, index=False, engine="pyarrow")
    out = [pq]
    csv = stem.with_name(stem.name + ".csv")
    df.to_csv(csv, index=False)
    out.append(csv)
    return out


def _parquet_ready(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing numbers and None/str become one type so pyarrow can write them."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            kinds = {type(v) for v in out[c] if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if kinds and kinds <= {int, float} and len(kinds) > 1:
                out[c] = pd.to_numeric(out[c])
            elif len(kinds) > 1:
                out[c] = out[c].map(lambda v: None if v is None else str(v))
    return out


def read_export(path: str | Path) -> pd.DataFrame:
    """Read back what ``export`` wrote (Parquet when present, else CSV)."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".parquet", ".csv") else p
    pq = stem.with_name(stem.name + ".parquet")
    if pq.exists():
        return pd.read_parquet(pq)
    return pd.read_csv(stem.with_name(stem.name + ".csv"))


def load_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Per-round metrics of the runs in ``df`` (long format): run_id, round, linear_probe_top1, knn_top1, ...
    Round 0 is the random-init encoder; rounds without evaluation have no probe value and are dropped."""
    rows = []
    for rec in df[["run_id", "results_dir"]].itertuples(index=False):
        path = Path(rec.results_dir) / "runs" / rec.run_id / "metrics.jsonl"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                m = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line of a running run: skip it
            if "linear_probe_top1" not in m and "knn_top1" not in m:
                continue
            rows.append({"run_id": rec.run_id, "results_dir": rec.results_dir, "round": int(m["round"]),
                         "linear_probe_top1": _num(m.get("linear_probe_top1")),
                         "linear_probe_top5": _num(m.get("linear_probe_top5")),
                         "knn_top1": _num(m.get("knn_top1"))})
    return pd.DataFrame(rows, columns=["run_id", "results_dir", "round", "linear_probe_top1", "linear_probe_top5",
                                       "knn_top1"])


def load_angle(results_dir: str | Path, run_id: str) -> dict[str, Any] | None:
    """The stored ``angle.json`` of a run (angle@v1), or None."""
    return read_json(Path(results_dir) / "runs" / run_id / "angle.json")


def _fmt_num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def describe_settings(row: Any) -> str:
    """Human one-liner of a run's key settings, e.g. ``cnn4, 10 clients, Dir(β=0.5), 10 rounds × 5 local
    epochs, 10,000 train images (JPEG copy)``."""
    def get(k: str) -> Any:
        v = row.get(k) if hasattr(row, "get") else getattr(row, k, None)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    parts = [str(get("backbone"))]
    if get("width") is not None:
        parts[-1] += f" (width {int(get('width'))})"
    parts.append(f"{_fmt_num(get('clients'))} clients")
    parts.append("IID" if get("partition") == "iid" else f"Dir(β={_fmt_num(get('beta'))})")
    parts.append(f"{_fmt_num(get('rounds'))} rounds × {_fmt_num(get('local_epochs'))} local epochs")
    if get("sample_fraction") not in (None, 1, 1.0):
        parts.append(f"{_fmt_num(get('sample_fraction'))} of clients per round")
    data = "full train split" if get("train_limit") is None else f"{int(get('train_limit')):,} train images"
    if get("fraction") not in (None, 1, 1.0):
        data += f", fraction {_fmt_num(get('fraction'))}"
    if get("data_source"):
        data += f" ({get('data_source')})"
    parts.append(data)
    if get("batch_size") is not None:
        parts.append(f"batch {_fmt_num(get('batch_size'))}")
    if get("lr") is not None:
        parts.append(f"lr {_fmt_num(get('lr'))}")
    if get("augment"):
        parts.append(f"aug {get('augment')}")
    return ", ".join(parts)


def settings_key(row: Any, keys: list[str] = GROUP_SETTINGS) -> tuple[Any, ...]:
    """Hashable tuple of the given settings (NaN/None normalised) for grouping runs into like-for-like cells."""
    out = []
    for k in keys:
        v = row.get(k) if hasattr(row, "get") else getattr(row, k, None)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            v = None
        elif isinstance(v, float) and v.is_integer():
            v = int(v)
        out.append(v)
    return tuple(out)

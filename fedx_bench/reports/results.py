"""Collect stored runs into one pandas DataFrame, and the paper's reference numbers."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from ..store import load_results

PAPER_FILE = Path(__file__).with_name("paper_numbers.json")

DATASET_ORDER = ["cifar10", "svhn", "fmnist", "synthetic"]
DATASET_DISPLAY = {"cifar10": "CIFAR-10", "svhn": "SVHN", "fmnist": "F-MNIST", "synthetic": "Synthetic"}


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


def _row(rec: dict[str, Any]) -> dict[str, Any]:
    spec = rec["spec"]
    cfg = spec.get("config", {})
    fx = cfg.get("fedx", {})
    ev = (rec.get("eval") or {}).get("metrics", {})
    fed = cfg.get("federation", {})
    row: dict[str, Any] = {
        "run_id": rec["run_id"],
        "results_dir": rec["results_dir"],
        "state": rec["status"].get("state"),
        "method": cfg.get("method"),
        "fedx": bool(fx.get("enabled")),
        "variant": fx.get("variant") if fx.get("enabled") else "none",
        "dataset": cfg.get("data", {}).get("name"),
        "data_source": (spec.get("dataset") or {}).get("source"),
        "data_notes": (spec.get("dataset") or {}).get("notes", ""),
        "train_limit": cfg.get("data", {}).get("train_limit"),
        "fraction": cfg.get("data", {}).get("fraction"),
        "seed": cfg.get("seed"),
        "backbone": cfg.get("model", {}).get("backbone"),
        "clients": fed.get("clients"),
        "beta": fed.get("beta") if fed.get("partition") == "dirichlet" else None,
        "partition": fed.get("partition"),
        "rounds": fed.get("rounds"),
        "local_epochs": fed.get("local_epochs"),
        "partition_sha256": spec.get("partition_sha256"),
        "protocols": json.dumps(spec.get("protocols", {}), sort_keys=True),
        "suite": spec.get("suite"),
        "wall_seconds": (rec.get("eval") or {}).get("wall_seconds"),
        "peak_rss_mb": (rec.get("eval") or {}).get("peak_rss_mb"),
        "device": (rec.get("env") or {}).get("device", {}).get("name"),
        "git_commit": (rec.get("env") or {}).get("git_commit"),
    }
    for key, short in (("linear_probe_top1", "probe"), ("knn_top1", "knn"), ("linear_probe_top5", "probe_top5")):
        m = ev.get(key, {})
        for col in ("last", "best", "init"):
            row[f"{short}_{col}"] = m.get(col)
    return row


def results_frame(*roots: str | Path, suite: str | None = None) -> pd.DataFrame:
    """One row per run (done or not) under the given results directories, optionally one suite's runs."""
    recs = load_results(*roots)
    if suite is not None:
        ids = set()
        for root in roots:
            p = Path(root) / "suites" / f"{suite}.json"
            if p.exists():
                ids |= set(json.loads(p.read_text()).get("run_ids", []))
        recs = [r for r in recs if r["run_id"] in ids]
    rows = [_row(r) for r in recs]
    return pd.DataFrame(rows)

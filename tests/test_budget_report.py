"""The gain-vs-budget report: the paired FedX gain per round with Student-t CIs equal to values computed here
with scipy, the first round whose CI excludes 0, and the report's table and figure read back."""

import hashlib
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from fedx_bench.reports import build_report
from fedx_bench.reports.budget import budget_curves, first_resolved_round
from fedx_bench.reports.results import load_curves, results_frame

ROUNDS = 8
SEEDS = (0, 1, 2)


def probe(variant: str, seed: int, r: int, epochs: int) -> float:
    """Known curves: FedX starts 1 pp behind and gains 0.5 pp a round (+ seed noise that is not constant)."""
    base = 40.0 + seed + 1.5 * r * epochs ** 0.5
    if variant == "fedx":
        base += -1.0 + 0.5 * r + 0.1 * ((seed * 7 + r) % 3)
    return round(base, 4)


def write(root: Path, variant: str, seed: int, epochs: int, rounds: int = ROUNDS) -> str:
    cfg = {"method": "simclr", "seed": seed, "fedx": {"enabled": variant == "fedx", "variant": "fedx"},
           "data": {"name": "cifar10", "source": "jpeg-copy", "train_limit": 5000, "fraction": 1.0},
           "model": {"backbone": "cnn4", "width": None},
           "federation": {"clients": 10, "partition": "dirichlet", "beta": 0.5, "rounds": rounds,
                          "local_epochs": epochs, "sample_fraction": 1.0},
           "optim": {"name": "sgd", "lr": 0.01, "batch_size": 64},
           "eval": {"protocols": ["linear_probe", "knn"], "interval": 1, "probe_epochs": 100}}
    rid = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
    d = root / "runs" / rid
    d.mkdir(parents=True)
    protos = {"linear_probe": "fedx-v1", "knn": "v1", "partition": "v1"}
    (d / "spec.json").write_text(json.dumps({"config": cfg, "run_id": rid, "label": rid, "suite": "budget-t",
                                             "partition_sha256": f"p{seed}", "protocols": protos}))
    (d / "status.json").write_text(json.dumps({"state": "done"}))
    lines = [{"round": 0, "linear_probe_top1": 30.0 + seed, "knn_top1": 25.0 + seed}]
    lines += [{"round": r, "steps": 70 * epochs, "linear_probe_top1": probe(variant, seed, r, epochs),
               "knn_top1": probe(variant, seed, r, epochs) - 5} for r in range(1, rounds + 1)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    last = lines[-1]
    (d / "eval.json").write_text(json.dumps({"metrics": {
        "linear_probe_top1": {"protocol": "linear_probe@fedx-v1", "init": lines[0]["linear_probe_top1"],
                              "last": last["linear_probe_top1"], "last_round": rounds,
                              "best": last["linear_probe_top1"], "best_round": rounds},
        "knn_top1": {"protocol": "knn@v1", "init": lines[0]["knn_top1"], "last": last["knn_top1"],
                     "best": last["knn_top1"]}}, "protocols": protos}))
    return rid


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    root = tmp_path / "res"
    for e in (1, 5):
        for s in SEEDS:
            for v in ("none", "fedx"):
                write(root, v, s, e)
    return root


def test_budget_gain_per_round_matches_scipy(store: Path) -> None:
    done = results_frame(store)
    bcs = budget_curves(done, load_curves(done))
    assert sorted(bc.key["local_epochs"] for bc in bcs) == [1, 5]
    for bc in bcs:
        e = bc.key["local_epochs"]
        t = bc.rows[bc.rows["metric"] == "linear_probe_top1"].set_index("round")
        assert list(t.index) == list(range(1, ROUNDS + 1)) and (t["n"] == 3).all()
        for r in (1, 4, ROUNDS):
            d = [probe("fedx", s, r, e) - probe("none", s, r, e) for s in SEEDS]
            lo, hi = stats.t.interval(0.95, 2, loc=sum(d) / 3, scale=stats.sem(d))
            p = stats.ttest_rel([probe("fedx", s, r, e) for s in SEEDS], [probe("none", s, r, e) for s in SEEDS])
            assert t.at[r, "gain"] == pytest.approx(sum(d) / 3)
            assert (t.at[r, "ci_low"], t.at[r, "ci_high"]) == pytest.approx((lo, hi))
            assert t.at[r, "p"] == pytest.approx(p.pvalue)
            assert t.at[r, "local_steps"] == pytest.approx(7 * e * r)  # 70·E steps over 10 clients per round
        assert t.at[1, "init"] == pytest.approx(31.0)  # round 0 mean over seeds (30, 31, 32)
        # by hand: round 1 gain ≈ −0.5 (behind, resolved), rounds ≥ 3 ahead; the first resolved round is 1, behind
        assert first_resolved_round(bc.rows, "linear_probe_top1") == (1, "FedX behind")
        assert first_resolved_round(bc.rows, "linear_probe_top1", ahead=True) == (3, "FedX ahead")


def test_budget_needs_three_seeds_to_resolve(store: Path) -> None:
    done = results_frame(store)
    done = done[done["seed"] != 2]
    bcs = budget_curves(done, load_curves(done))
    assert all(first_resolved_round(bc.rows, "linear_probe_top1") is None for bc in bcs)


def test_budget_artefacts_in_report(store: Path, tmp_path: Path) -> None:
    res = build_report(store, tmp_path / "rep")
    md = (res.out_dir / "budget.md").read_text()
    assert "E = 1" in md and "E = 5" in md
    assert "first round whose gain CI excludes 0: 1 (FedX behind); first round FedX is resolved ahead: 3" in md
    csv = pd.read_csv(res.out_dir / "budget.csv")
    assert len(csv) == 2 * 2 * ROUNDS and not csv["gain"].isna().any()
    assert (res.out_dir / "budget.png").stat().st_size > 10_000
    index = res.index.read_text()
    assert "FedX gain vs training budget" in index


def test_no_budget_artefact_for_short_runs(tmp_path: Path) -> None:
    root = tmp_path / "res"
    for s in SEEDS:
        for v in ("none", "fedx"):
            write(root, v, s, 1, rounds=3)
    res = build_report(root, tmp_path / "rep")
    assert not (res.out_dir / "budget.md").exists()
    assert math.isfinite(len(res.absent)) and "Gain vs training budget" in res.absent

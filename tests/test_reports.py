"""Reports from a hand-written run store (no training): every artefact is produced, numbers land in the right
cells, missing cells are "—" (never 0), compare flags unlike partitions/protocols, export round-trips."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fedx_bench.errors import UserError
from fedx_bench.reports import (
    build_report,
    collect,
    detect_sweeps,
    export,
    paper_cells,
    read_export,
    render_table1,
    results_frame,
)

PROTOCOLS = {"knn": "v1", "linear_probe": "fedx-v1", "partition": "v1"}
BASE_ACC = {("simclr", "cifar10"): 40.0, ("simclr", "fmnist"): 70.0, ("byol", "cifar10"): 42.0,
            ("byol", "fmnist"): 71.0}
GAIN = {"fedx": 3.0, "fedx-no-relational": 2.0, "fedx-no-global": 0.5, "fedx-no-head": 1.5}
ROUNDS = 5


def _partition_hash(dataset: str, seed: int, clients: int, beta: float, partition: str, fraction: float) -> str:
    return hashlib.sha256(f"{dataset}:{seed}:{clients}:{beta}:{partition}:{fraction}".encode()).hexdigest()


def curve_for(method: str, variant: str, dataset: str, seed: int, clients: int = 10, beta: float = 0.5,
              partition: str = "dirichlet", fraction: float = 1.0, rounds: int = ROUNDS,
              local_epochs: int = 2) -> list[float]:
    """Known per-round probe values: round 0 = random init (same for ± FedX of one seed), then a rise whose
    level depends on method, variant, seed and the swept settings; the peak is at round 3 (Best ≠ Last)."""
    base = BASE_ACC[(method, dataset)] + 0.7 * seed - 0.05 * clients + (2.0 if partition == "iid" else beta)
    base += 4.0 * fraction + 0.1 * local_epochs * rounds + 0.2 * local_epochs
    top = base + GAIN.get(variant, 0.0) + (0.02 * clients + 0.05 * local_epochs if variant != "none" else 0.0)
    init = 20.0 + seed
    shape = [0.0] + [0.6 + 0.2 * (r - 1) if r <= 3 else 1.0 - 0.05 * (r - 3) for r in range(1, rounds + 1)]
    return [round(init, 4)] + [round(init + (top - init) * s, 4) for s in shape[1:]]


def write_run(root: Path, *, method: str, variant: str, dataset: str, seed: int, clients: int = 10,
              beta: float = 0.5, partition: str = "dirichlet", fraction: float = 1.0, rounds: int = ROUNDS,
              local_epochs: int = 2, state: str = "done",
              protocols: dict[str, str] | None = None, partition_hash: str | None = None, suite: str = "fixture",
              angle: bool = False, semi: bool = False, run_id: str | None = None) -> str:
    """Write one run's store files (spec, eval, metrics, status, optional angle.json / semi-supervised)."""
    cfg = {
        "method": method, "method_args": {}, "seed": seed, "device": "auto", "deterministic": False,
        "fedx": {"enabled": variant != "none", "variant": "fedx" if variant == "none" else variant},
        "data": {"name": dataset, "source": "jpeg-copy" if dataset == "cifar10" else "torchvision",
                 "train_limit": 1000, "fraction": fraction, "augment": "reference"},
        "model": {"backbone": "cnn4", "width": None},
        "federation": {"clients": clients, "partition": partition, "beta": beta, "rounds": rounds,
                       "local_epochs": local_epochs,
                       "sample_fraction": 1.0},
        "optim": {"name": "sgd", "lr": 0.01, "batch_size": 64, "random_batch_size": None},
        "eval": {"protocols": ["linear_probe", "knn"], "interval": 1, "probe_epochs": 100},
    }
    rid = run_id or hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
    d = root / "runs" / rid
    if (d / "spec.json").exists():  # the same config in two suites is one run (run id = config hash)
        return rid
    d.mkdir(parents=True, exist_ok=True)
    phash = partition_hash or _partition_hash(dataset, seed, clients, beta, partition, fraction)
    protos = protocols or PROTOCOLS
    spec = {"config": cfg, "run_id": rid, "label": f"{method}/{dataset}/s{seed}", "suite": suite,
            "partition_sha256": phash, "protocols": protos, "augment": "reference-cifar",
            "dataset": {"source": cfg["data"]["source"], "notes": "JPEG copy (q75) of CIFAR-10, not the original"
                        " pixels" if dataset == "cifar10" else ""}}
    (d / "spec.json").write_text(json.dumps(spec))
    (d / "status.json").write_text(json.dumps({"state": state}))
    if state != "done":
        return rid
    curve = curve_for(method, variant, dataset, seed, clients, beta, partition, fraction, rounds, local_epochs)
    lines = [{"round": r, "linear_probe_top1": v, "linear_probe_top5": min(100.0, v + 30), "knn_top1": v - 2,
              "wall_seconds": float(r)} for r, v in enumerate(curve)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    ev: dict[str, Any] = {"metrics": {
        "linear_probe_top1": {"protocol": f"linear_probe@{protos['linear_probe']}", "init": curve[0],
                              "last": curve[-1], "last_round": rounds, "best": max(curve[1:]),
                              "best_round": 1 + curve[1:].index(max(curve[1:]))},
        "knn_top1": {"protocol": "knn@v1", "init": curve[0] - 2, "last": curve[-1] - 2, "best": max(curve[1:]) - 2}},
        "wall_seconds": 10.0, "peak_rss_mb": 100.0, "protocols": protos}
    if semi:
        ev["semi_supervised"] = {"protocol": "semi_supervised@v1", "round": rounds, "seed": seed, "results": {
            "0.01": {"top1": semi_value(method, variant, dataset, seed, 0.01), "top5": 90.0, "n_labelled": 10},
            "0.1": {"top1": semi_value(method, variant, dataset, seed, 0.1), "top5": 95.0, "n_labelled": 100}},
            "init": {"0.01": {"top1": 10.0 + seed}, "0.1": {"top1": 20.0 + seed}}}
    (d / "eval.json").write_text(json.dumps(ev))
    if angle:
        (d / "angle.json").write_text(json.dumps(angle_record(variant, seed)))
    return rid


def semi_value(method: str, variant: str, dataset: str, seed: int, frac: float) -> float:
    return round(BASE_ACC[(method, dataset)] + 10 * frac * 10 + seed + (2.5 if variant == "fedx" else 0.0), 4)


EDGES = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]


def angle_record(variant: str, seed: int) -> dict[str, Any]:
    """FedX drifts less (lower angles) and separates classes more (larger gap)."""
    shift = -10.0 if variant == "fedx" else 0.0
    hist = [0, 5, 20, 40, 25, 8, 2, 0, 0] if variant == "fedx" else [0, 0, 5, 15, 35, 30, 10, 5, 0]
    drift = {"bin_edges": EDGES,
             "pooled": {"mean": 45.0 + shift + seed, "median": 44.0 + shift + seed, "hist": hist, "n": 100},
             "per_client": {"0": {"mean": 40.0 + shift, "median": 40.0, "hist": hist, "n": 50, "frequent_mean": 35.0,
                                  "rare_mean": 50.0}},
             "frequent": {"mean": 38.0 + shift + seed, "hist": hist}, "rare": {"mean": 52.0 + shift + seed,
                                                                               "hist": hist}}
    intra, inter = 60.0 - (5.0 if variant == "fedx" else 0.0) + seed, 80.0 + seed
    cs = {"intra": intra, "inter": inter, "gap": inter - intra,
          "per_class": [{"class": c, "intra": intra, "inter": inter, "gap": inter - intra} for c in range(3)]}
    return {"protocol": "angle@v1", "rounds": {str(ROUNDS): {"drift": drift, "class_structure": cs},
                                               "2": {"drift": drift, "class_structure": cs}}}


def make_fixture(root: Path) -> dict[str, list[str]]:
    """2 methods × ± FedX × 2 datasets × 3 seeds (BYOL + FedX on F-MNIST missing), FedSimCLR ablation variants
    on CIFAR-10, a clients sweep (5, 10, 20) for FedSimCLR on CIFAR-10, angle.json for FedSimCLR ± FedX on
    CIFAR-10, semi-supervised results for FedSimCLR and for BYOL on CIFAR-10, plus one failed run."""
    ids: dict[str, list[str]] = {"fixture": [], "ablation": [], "sweep": []}
    for m in ("simclr", "byol"):
        for ds in ("cifar10", "fmnist"):
            for seed in (0, 1, 2):
                for v in ("none", "fedx"):
                    if (m, ds, v) == ("byol", "fmnist", "fedx"):
                        continue
                    ids["fixture"].append(write_run(root, method=m, variant=v, dataset=ds, seed=seed,
                                                    angle=m == "simclr" and ds == "cifar10",
                                                    semi=m == "simclr" or ds == "cifar10"))
    for seed in (0, 1, 2):
        for v in ("none", "fedx", "fedx-no-relational", "fedx-no-global", "fedx-no-head"):
            ids["ablation"].append(write_run(root, method="simclr", variant=v, dataset="cifar10", seed=seed,
                                             suite="ablation", angle=v in ("none", "fedx")))
    for clients in (5, 10, 20):
        for seed in (0, 1):
            for v in ("none", "fedx"):
                ids["sweep"].append(write_run(root, method="simclr", variant=v, dataset="cifar10", seed=seed,
                                              clients=clients, suite="sweep", angle=clients == 10))
    ids["fixture"].append(write_run(root, method="simclr", variant="fedx", dataset="cifar10", seed=9,
                                    state="failed"))
    (root / "suites").mkdir(parents=True, exist_ok=True)
    for name, run_ids in ids.items():
        (root / "suites" / f"{name}.json").write_text(json.dumps({"name": name, "run_ids": run_ids}))
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("res") / "results"
    make_fixture(root)
    return root


@pytest.fixture(scope="module")
def report(store: Path, tmp_path_factory: pytest.TempPathFactory):
    return build_report(store, tmp_path_factory.mktemp("rep"))


def _ms(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values)


# ----------------------------------------------------------------------------------------------- report files


def test_report_writes_every_artefact(report) -> None:
    out = report.out_dir
    assert out.name == "results"
    for stem in ("table1", "ablation", "sensitivity_clients", "angle", "semi_supervised"):
        for ext in ("md", "tex", "csv"):
            assert (out / f"{stem}.{ext}").stat().st_size > 50, f"{stem}.{ext}"
    for stem in ("curves_simclr", "curves_byol", "ablation_curves", "sensitivity_clients", "angle_simclr"):
        for ext in ("png", "pdf"):
            assert (out / f"{stem}.{ext}").stat().st_size > 5000, f"{stem}.{ext}"
    assert (out / "runs.csv").exists() and (out / "runs.parquet").exists()
    index = (out / "index.md").read_text()
    for f in report.files:
        if f.name != "index.md":
            assert f"({f.name})" in index, f"index.md does not link {f.name}"
    assert "**Protocols**" in index and "`linear_probe@fedx-v1`" in index and "`angle@v1`" in index
    assert "**Partitions**" in index and "**Seeds per cell**" in index and "**Configuration**" in index
    assert "1 failed" in index
    # no BYOL angle.json: that figure is absent, and index.md says why
    assert "angle_byol.png" not in index and "Angle distributions: FedBYOL" in index


def test_table1_numbers_bold_and_missing(report, store: Path) -> None:
    csv = pd.read_csv(report.out_dir / "table1.csv")
    # the runs in Table 1 are the main setting (10 clients): fixture + ablation + sweep at 10 clients, 3 seeds
    for m, v, ds in (("simclr", "none", "cifar10"), ("simclr", "fedx", "fmnist"), ("byol", "fedx", "cifar10")):
        curves = [curve_for(m, v, ds, s) for s in (0, 1, 2)]
        for col, vals in (("last", [c[-1] for c in curves]), ("best", [max(c[1:]) for c in curves])):
            row = csv[(csv.method == m) & (csv.variant == v) & (csv.dataset == ds) & (csv.column == col)].iloc[0]
            mean, std = _ms(vals)
            assert row["mean"] == pytest.approx(mean, abs=1e-3) and row["std"] == pytest.approx(std, abs=1e-3)
            assert row["n"] == 3
    paper = csv[(csv.method == "simclr") & (csv.variant == "fedx") & (csv.dataset == "cifar10")
                & (csv.column == "last")]
    assert paper.iloc[0]["paper"] == 56.88 and "Table 1, row 2" in paper.iloc[0]["paper_source"]
    assert paper.iloc[0]["delta"] == pytest.approx(paper.iloc[0]["mean"] - 56.88, abs=1e-3)
    # missing cell: BYOL + FedX on F-MNIST has no runs → empty mean, n = 0, "—" in Markdown, never 0
    miss = csv[(csv.method == "byol") & (csv.variant == "fedx") & (csv.dataset == "fmnist")]
    assert miss["mean"].isna().all() and (miss["n"] == 0).all()
    md = (report.out_dir / "table1.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    byol = next(i for i, r in enumerate(rows) if r.startswith("| FedBYOL"))
    byol_fedx = rows[byol + 1]
    assert byol_fedx.split(" | ")[5].startswith("—")  # F-MNIST Last
    assert " 0.00" not in byol_fedx.split(" | ")[5]
    # all ten paper rows are present, the unrun ones with — beside the paper value
    assert sum(r.startswith("| + FedX") for r in rows) == 5 and any(r.startswith("| FedU | — / 50.79") for r in rows)
    # bold = the larger mean of each pair (+ FedX here, by construction)
    simclr = next(i for i, r in enumerate(rows) if r.startswith("| FedSimCLR"))
    assert "**" not in rows[simclr].split(" | ")[1] and rows[simclr + 1].split(" | ")[1].startswith("**")
    tex = (report.out_dir / "table1.tex").read_text()
    assert "\\textbf{" in tex and "$\\pm$" in tex


def test_fedx_effect_table_pairs_by_seed(report) -> None:
    """Per base method: learns (beats its own round-0 encoder) and the FedX gain, paired by seed, read back."""
    df = pd.read_csv(report.out_dir / "fedx_effect.csv")
    row = df[(df["dataset"] == "cifar10") & (df["method"] == "simclr")].iloc[0]
    gains = [curve_for("simclr", "fedx", "cifar10", s)[-1] - curve_for("simclr", "none", "cifar10", s)[-1]
             for s in (0, 1, 2)]
    learn = [curve_for("simclr", "none", "cifar10", s)[-1] - curve_for("simclr", "none", "cifar10", s)[0]
             for s in (0, 1, 2)]
    assert row["gain_n"] == 3 and math.isclose(row["gain_mean"], statistics.mean(gains), abs_tol=1e-3)
    assert math.isclose(row["learn_mean"], statistics.mean(learn), abs_tol=1e-3)
    assert math.isclose(row["init_mean"], 21.0, abs_tol=1e-3)  # init = 20 + seed, seeds 0-2
    md = (report.out_dir / "fedx_effect.md").read_text()
    simclr_c10 = next(line for line in md.splitlines() if line.startswith("| CIFAR-10 | FedSimCLR |"))
    cells = [c.strip() for c in simclr_c10.strip("|").split("|")]
    assert cells[-1] == "helps" and cells[-2] == "yes; + FedX yes"  # constant gain over 3 seeds: resolved
    byol_fm = next(line for line in md.splitlines() if line.startswith("| F-MNIST | FedBYOL |"))
    cells = [c.strip() for c in byol_fm.strip("|").split("|")]
    assert cells[4] == "—" and cells[6] == "—" and cells[9] == "—"  # no + FedX runs: missing, not zero
    assert "(fedx_effect.md)" in (report.out_dir / "index.md").read_text()


def test_ablation_table(report) -> None:
    csv = pd.read_csv(report.out_dir / "ablation.csv")
    assert set(csv["variant"]) == {"none", "fedx", "fedx-no-relational", "fedx-no-global", "fedx-no-head"}
    row = csv[(csv.variant == "fedx-no-global") & (csv.column == "last")].iloc[0]
    mean, std = _ms([curve_for("simclr", "fedx-no-global", "cifar10", s)[-1] for s in (0, 1, 2)])
    assert row["mean"] == pytest.approx(mean, abs=1e-3) and row["std"] == pytest.approx(std, abs=1e-3)
    assert row["paper"] == 51.9 and row["paper_kind"] == "digitised ±0.5"
    md = (report.out_dir / "ablation.md").read_text()
    assert "digitised ±0.5" in md and "w/o global KD" in md and "(Table 1)" in md


def test_sensitivity_detects_sweep_and_gain(report, store: Path) -> None:
    sweeps = detect_sweeps(results_frame(store).query("state == 'done'"))
    assert [s.key for s in sweeps] == ["clients"]
    csv = pd.read_csv(report.out_dir / "sensitivity_clients.csv")
    assert list(csv["x"]) == [5, 10, 20] and set(csv["method"]) == {"simclr"}
    at5 = csv[csv.x == 5].iloc[0]
    gains = [curve_for("simclr", "fedx", "cifar10", s, clients=5)[-1] - curve_for("simclr", "none", "cifar10", s,
                                                                                    clients=5)[-1] for s in (0, 1)]
    assert at5["gain_mean"] == pytest.approx(statistics.mean(gains), abs=1e-3) and at5["gain_n"] == 2
    assert csv[csv.x == 10].iloc[0]["base_n"] == 3  # the 10-client point is shared with the main runs


def test_beta_and_local_epoch_sweeps(tmp_path: Path) -> None:
    """β with IID (drawn as the last category) and local epochs with scaled and fixed rounds: separate series."""
    root = tmp_path / "sens"
    for seed in (0, 1):
        for v in ("none", "fedx"):
            for beta in (0.1, 0.5, 5.0):
                write_run(root, method="simclr", variant=v, dataset="cifar10", seed=seed, beta=beta)
            write_run(root, method="simclr", variant=v, dataset="cifar10", seed=seed, partition="iid")
            for e, r in ((1, 8), (2, 4), (4, 2)):  # R x E = 8
                write_run(root, method="simclr", variant=v, dataset="cifar10", seed=seed, local_epochs=e, rounds=r)
            for e in (1, 4):  # fixed R = 4 (E = 2 is shared with the scaled series)
                write_run(root, method="simclr", variant=v, dataset="cifar10", seed=seed, local_epochs=e, rounds=4)
    sweeps = {s.tag: s for s in detect_sweeps(results_frame(root))}
    assert set(sweeps) == {"beta", "local-epochs_scaled", "local-epochs_fixed-rounds"}
    assert sorted(sweeps["beta"].points["x"].unique()) == [0.1, 0.5, 5.0, math.inf]
    assert sweeps["beta"].fmt(math.inf) == "IID"
    scaled = sweeps["local-epochs_scaled"].points
    assert set(zip(scaled["local_epochs"], scaled["rounds"])) == {(1, 8), (2, 4), (4, 2)}
    fixed = sweeps["local-epochs_fixed-rounds"].points
    assert set(fixed["rounds"]) == {4} and set(fixed["local_epochs"]) == {1, 2, 4}
    res = build_report(root, tmp_path / "rep")
    for stem in ("sensitivity_beta", "sensitivity_local-epochs_scaled", "sensitivity_local-epochs_fixed-rounds"):
        assert (res.out_dir / f"{stem}.png").exists() and (res.out_dir / f"{stem}.md").exists()
    beta = pd.read_csv(res.out_dir / "sensitivity_beta.csv")
    assert list(beta["x_label"]) == ["0.1", "0.5", "5", "IID"]
    iid = beta.iloc[-1]
    expect = statistics.mean(curve_for("simclr", "none", "cifar10", s, partition="iid")[-1] for s in (0, 1))
    assert iid["base_mean"] == pytest.approx(expect, abs=1e-3)


def test_angle_and_semi_tables(report) -> None:
    a = pd.read_csv(report.out_dir / "angle.csv")
    fx = a[(a.method == "simclr") & (a.variant == "fedx")].iloc[0]
    assert fx["round"] == ROUNDS and fx["drift_mean_n"] == 3
    assert fx["drift_mean_mean"] == pytest.approx(statistics.mean(35.0 + s for s in (0, 1, 2)))
    assert fx["gap_mean"] == pytest.approx(25.0)
    s = pd.read_csv(report.out_dir / "semi_supervised.csv")
    r = s[(s.method == "simclr") & (s.variant == "fedx") & (s.dataset == "fmnist") & (s.fraction == 0.01)].iloc[0]
    assert r["mean"] == pytest.approx(statistics.mean(semi_value("simclr", "fedx", "fmnist", x, 0.01)
                                                      for x in (0, 1, 2)))
    assert r["n_labelled"] == 10
    md = (report.out_dir / "semi_supervised.md").read_text()
    assert "CIFAR-10 1%" in md and "F-MNIST 10%" in md and "benchmark-defined" in md
    byol = next(ln for ln in md.splitlines() if ln.startswith("| FedBYOL"))
    assert byol.endswith("| — | — |") and "(3)" in byol  # no F-MNIST semi-supervised results: —, never 0
    init = next(ln for ln in md.splitlines() if ln.startswith("| Random-init encoder"))
    assert init.split("|")[1:3] == [" Random-init encoder ", " 11.00 ± 1.00 (3) "]  # one per seed, not per method


def test_report_for_suite(store: Path, tmp_path: Path) -> None:
    res = build_report("ablation", tmp_path / "reports", results_dirs=[store])
    assert res.out_dir == tmp_path / "reports" / "ablation"
    assert len(res.runs) == 15 and set(res.runs["suite"]) >= {"ablation"}
    assert (res.out_dir / "ablation_curves.png").exists() and (res.out_dir / "table1.md").exists()
    index = res.index.read_text()
    assert "## Not produced" in index and "**Sensitivity**" in index
    assert not (res.out_dir / "sensitivity_clients.png").exists()
    with pytest.raises(Exception, match="no runs recorded"):
        build_report("no-such-suite", tmp_path / "reports", results_dirs=[store])


def test_no_semi_table_when_only_other_suites_have_it(tmp_path: Path) -> None:
    """Another suite's runs in the same store have semi-supervised results, this suite's do not: no empty table."""
    root = tmp_path / "results"
    with_semi = write_run(root, method="simclr", variant="none", dataset="cifar10", seed=0, semi=True, suite="a")
    without = [write_run(root, method="simclr", variant=v, dataset="cifar10", seed=1, suite="b")
               for v in ("none", "fedx")]
    (root / "suites").mkdir(parents=True)
    for name, ids in (("a", [with_semi]), ("b", without)):
        (root / "suites" / f"{name}.json").write_text(json.dumps({"name": name, "run_ids": ids}))
    res = build_report("b", tmp_path / "reports", results_dirs=[root])
    assert not (res.out_dir / "semi_supervised.md").exists()
    assert "**Semi-supervised**" in res.index.read_text()
    assert (build_report("a", tmp_path / "reports", results_dirs=[root]).out_dir / "semi_supervised.md").exists()


def test_absent_inputs_produce_no_artefact_and_no_stale_files(tmp_path: Path) -> None:
    root = tmp_path / "mini"
    for v in ("none", "fedx"):
        write_run(root, method="simclr", variant=v, dataset="cifar10", seed=0)
    abl = write_run(root, method="simclr", variant="fedx-no-head", dataset="cifar10", seed=0)
    res = build_report(root, tmp_path / "reports")
    assert (res.out_dir / "ablation.md").exists() and (res.out_dir / "curves_simclr.png").exists()
    index = res.index.read_text()
    for what in ("Sensitivity", "Angle analysis", "Semi-supervised"):
        assert f"**{what}**" in index
    for f in ("angle.md", "semi_supervised.csv", "angle_simclr.png", "sensitivity_clients.md"):
        assert not (res.out_dir / f).exists()
    # one seed: "(1)" and no ± in Table 1
    assert "(1)" in (res.out_dir / "table1.md").read_text()
    # the ablation run disappears → its artefacts are removed on rebuild, not left stale
    for f in (root / "runs" / abl).iterdir():
        f.unlink()
    (root / "runs" / abl).rmdir()
    res = build_report(root, tmp_path / "reports")
    assert not (res.out_dir / "ablation.md").exists() and not (res.out_dir / "ablation_curves.png").exists()
    assert "**Ablation**" in res.index.read_text()


def test_render_table1_defaults_unchanged(store: Path) -> None:
    df = results_frame(store, suite="fixture")
    md = render_table1(df)
    assert "FedMoCo" not in md and "FedBYOL" in md and "SVHN" not in md  # only rows/datasets with runs
    full = render_table1(df, full=True, variants=["none", "fedx"])
    assert "FedMoCo" in full and "SVHN Last" in full


# ----------------------------------------------------------------------------------------------- compare


# compare: see tests/test_compare.py (per setting, with statistics)


# ----------------------------------------------------------------------------------------------- stored data


def test_collect_export_round_trip(store: Path, tmp_path: Path) -> None:
    df = collect([store])
    assert len(df) == len({p.name for p in (store / "runs").iterdir()})
    assert {"semi_0.01_top1", "angle_gap", "partition_sha256", "protocol_versions"} <= set(df.columns)
    files = export(df, tmp_path / "all")
    assert [f.suffix for f in files] == [".parquet", ".csv"]
    back = read_export(tmp_path / "all")
    assert list(back.columns) == list(df.columns) and len(back) == len(df)
    key = ["run_id", "seed", "probe_last", "probe_best", "clients", "partition_sha256"]
    pd.testing.assert_frame_equal(back[key].reset_index(drop=True), df[key].reset_index(drop=True),
                                  check_dtype=False)
    csv = pd.read_csv(tmp_path / "all.csv")
    assert csv["probe_last"].sum() == pytest.approx(df["probe_last"].sum())


def test_paper_cells_have_provenance() -> None:
    cells = paper_cells()
    t1 = cells[cells.reference == "Table 1"]
    assert len(t1) == 60 and t1["source"].str.startswith("Table 1, row ").all()
    row = t1[(t1.method == "protocl") & (t1.fedx) & (t1.dataset == "fmnist") & (t1.column == "best")].iloc[0]
    assert row["value"] == 83.34 and "row 8" in row["source"] and "F-MNIST Best" in row["source"]
    assert (cells[cells.reference == "ablation figure"]["kind"] == "digitised ±0.5").all()
    assert not math.isnan(cells["value"].astype(float).sum())


def test_report_without_pyarrow_fails_and_deletes_nothing(store: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import fedx_bench.reports.results as results

    out = tmp_path / "reports"
    folder = build_report(store, out).out_dir
    before = sorted(p.name for p in folder.iterdir())
    assert "runs.parquet" in before
    monkeypatch.setattr(results, "parquet_available", lambda: False)
    with pytest.raises(UserError, match="pyarrow"):
        build_report(store, out)
    with pytest.raises(UserError, match="pyarrow"):
        export(collect(store), tmp_path / "x" / "runs")
    assert sorted(p.name for p in folder.iterdir()) == before
    assert not (tmp_path / "x").exists()


def test_run_store_and_reports_import_no_torch():
    """Reports read only the run store; the store is torch-free file handling (checkpoints and env.json live with
    the code that runs models). Checked in a fresh interpreter."""
    import subprocess
    import sys

    code = ("import sys, fedx_bench.store, fedx_bench.reports, fedx_bench.reports.design, fedx_bench.listing; "
            "from fedx_bench.store import read_json, file_mode, RunStore, inspect_run; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout

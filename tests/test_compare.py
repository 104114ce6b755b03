"""Comparisons against stored baselines from fixture stores with known numbers: a cell pools only runs of one setting,
a plug-in method meets the baselines of its own setting (and no other), paired differences equal scipy's, a setting
without baselines names its nearest stored setting, code-version mixes are flagged, bad input is one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from fedx_bench import api
from fedx_bench.cli import main
from fedx_bench.config import RunConfig
from fedx_bench.reports import compare, results_frame
from fedx_bench.reports.results import CorruptRunWarning

PROTOCOLS = {"knn": "v1", "linear_probe": "fedx-v1", "partition": "v1"}
PLUGIN = "examples.my_simsiam:SimSiam"


def write_run(root: Path, method: str, fedx: bool, seed: int, last: float, *, rounds: int = 5,
              init: float | None = None, commit: str = "a" * 40, phash: str | None = None) -> str:
    """One finished run with known numbers (full resolved config, as the runner writes it)."""
    cfg = RunConfig(method=method, seed=seed).to_dict()
    cfg["fedx"]["enabled"] = fedx
    cfg["data"].update(name="synthetic", root="/machine/data")
    cfg["model"]["backbone"] = "cnn4"
    cfg["federation"].update(rounds=rounds, local_epochs=1)
    rid = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
    d = root / "runs" / rid
    d.mkdir(parents=True)
    init = 20.0 + seed if init is None else init
    spec = {"config": cfg, "run_id": rid, "label": f"{method}/synthetic/s{seed}", "suite": "fx",
            "partition_sha256": phash or hashlib.sha256(f"p{seed}".encode()).hexdigest(), "protocols": PROTOCOLS,
            "dataset": {"source": "generated", "notes": ""}}
    (d / "spec.json").write_text(json.dumps(spec))
    (d / "env.json").write_text(json.dumps({"git_commit": commit, "device": {"torch_threads": 1}}))
    (d / "status.json").write_text(json.dumps({"state": "done"}))
    lines = [{"round": 0, "linear_probe_top1": init, "knn_top1": init}, {"round": rounds, "linear_probe_top1": last,
                                                                        "knn_top1": last}]
    (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    m: dict[str, Any] = {"init": init, "last": last, "best": last}
    (d / "eval.json").write_text(json.dumps({"metrics": {"linear_probe_top1": m, "knn_top1": m}}))
    return rid


BASE = {0: 45.0, 1: 46.0, 2: 44.5}
FEDX = {0: 44.0, 1: 45.2, 2: 43.0}
NEW = {0: 47.0, 1: 47.5, 2: 46.9}


@pytest.fixture()
def stores(tmp_path: Path) -> tuple[Path, Path]:
    stored, new = tmp_path / "results", tmp_path / "my-results"
    for s in (0, 1, 2):
        write_run(stored, "simclr", False, s, BASE[s])
        write_run(stored, "simclr", True, s, FEDX[s])
        write_run(stored, "simclr", False, s, 30.0 + s, rounds=1)  # another setting: must never join a cell
        write_run(new, PLUGIN, False, s, NEW[s])
    return stored, new


def test_mixed_store_gives_one_table_per_setting(stores: tuple[Path, Path]) -> None:
    stored, _ = stores
    out = api.report(stored)
    assert out.count("### Setting") == 2 and "rounds 5" in out and "rounds 1" in out
    five = out[out.index("rounds 5"):]
    five = five[:five.index("### Setting")] if "### Setting" in five else five
    mean = np.mean(list(BASE.values()))
    assert f"{mean:.2f} ± {np.std(list(BASE.values()), ddof=1):.2f} (3)" in five  # only the rounds-5 runs
    assert "31.00" not in five
    df = results_frame(stored)
    assert df["setting_id"].nunique() == 2
    one = df[df["setting_id"] == df["setting_id"].iloc[0]]["setting_id"].iloc[0]
    assert api.report(stored, setting=one[:6]).count("### Setting") == 1


def test_plugin_meets_baselines_of_its_setting(stores: tuple[Path, Path]) -> None:
    stored, new = stores
    res = compare(stored, new)
    assert set(res.rows["setting"]) == {results_frame(new)["setting_id"].iloc[0]}
    rows = {(r.side, r.method, r.variant) for r in res.rows.itertuples()}
    assert rows == {("new", PLUGIN, "none"), ("stored", "simclr", "none"), ("stored", "simclr", "fedx"),
                    ("stored + new", "random-init", "none")}
    trained = res.rows[res.rows["method"] != "random-init"]
    assert (trained["mean"] > 40).all()  # the rounds-1 setting (30-32 %) is not a baseline
    d = res.diffs.set_index(["baseline_method", "baseline_variant"])
    vs = d.loc[("simclr", "none")]
    x, y = [BASE[s] for s in (0, 1, 2)], [NEW[s] for s in (0, 1, 2)]
    diffs = np.subtract(y, x)
    lo, hi = sps.t.interval(0.95, 2, loc=diffs.mean(), scale=sps.sem(diffs))
    assert vs["pairing"] == "paired" and vs["n"] == 3 and vs["diff"] == pytest.approx(diffs.mean())
    assert (vs["ci_low"], vs["ci_high"]) == pytest.approx((lo, hi))
    assert vs["p_value"] == pytest.approx(sps.ttest_rel(y, x).pvalue)
    assert vs["verdict"] == ("better" if lo > 0 else vs["verdict"])
    floor = d.loc[("random-init", "none")]
    assert floor["diff"] == pytest.approx(np.mean(y) - 21.0) and floor["verdict"] == "better"
    md = res.render("md")
    assert "Random-init encoder" in md and "FedSimCLR + FedX" in md and "paired" in md
    # report NEW --results STORED: the new method in the same table as the stored rows
    out = api.report(new, baseline_dirs=[stored])
    assert out.count("### Setting") == 1 and "FedSimCLR" in out and "SimSiam" in out


def test_unpaired_when_partitions_differ(tmp_path: Path) -> None:
    stored, new = tmp_path / "s", tmp_path / "n"
    for s in (0, 1, 2):
        write_run(stored, "simclr", False, s, BASE[s])
        write_run(new, PLUGIN, False, s, NEW[s], phash="f" * 63 + str(s))
    res = compare(stored, new)
    vs = res.diffs[res.diffs["baseline_method"] == "simclr"].iloc[0]
    ref = sps.ttest_ind(list(NEW.values()), list(BASE.values()), equal_var=False)
    assert vs["pairing"] == "unpaired" and vs["p_value"] == pytest.approx(ref.pvalue)
    assert "partition hashes differ" in vs["flag"]


def test_no_baseline_lists_nearest_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stored, new = tmp_path / "s", tmp_path / "n"
    for s in (0, 1):
        write_run(stored, "simclr", False, s, BASE[s], rounds=5)
        write_run(new, PLUGIN, False, s, NEW[s], rounds=1)
    res = compare(stored, new)
    assert res.no_overlap and len(res.unmatched) == 1
    assert res.unmatched.iloc[0]["differences"] == "rounds 1≠5"
    assert main(["compare", "--baseline", str(stored), "--new", str(new)]) == 0
    out = capsys.readouterr().out
    assert "No overlap" in out and "rounds 1≠5" in out
    assert main(["compare", "--baseline", str(stored), "--new", str(new), "--strict"]) == 1


def test_code_version_mismatch_is_flagged(tmp_path: Path) -> None:
    stored, new = tmp_path / "s", tmp_path / "n"
    for s in (0, 1, 2):
        write_run(stored, "simclr", False, s, BASE[s], commit=("a" if s else "b") * 40)
        write_run(stored, "simclr", True, s, FEDX[s])
        write_run(new, PLUGIN, False, s, NEW[s])
    res = compare(stored, new)
    flagged = res.flagged
    assert len(flagged) and (flagged["baseline_variant"] == "none").all()
    assert all("mixed code versions" in f for f in flagged["flag"])
    out = api.report(stored)
    assert "†" in out and "more than one code version" in out


def test_corrupt_run_is_skipped_with_a_warning(stores: tuple[Path, Path]) -> None:
    stored, _ = stores
    victim = sorted((stored / "runs").iterdir())[0]
    (victim / "eval.json").write_text('{"metrics": {"linear')
    with pytest.warns(CorruptRunWarning, match=f"{victim.name}.*eval.json"):
        df = results_frame(stored)
    assert len(df) == 8 and victim.name not in set(df["run_id"])


def test_missing_directory_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "no-such-dir")
    for argv in (["report", missing], ["compare", "--baseline", missing, "--new", missing], ["verify", missing]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "not found" in err
    assert not (tmp_path / "no-such-dir").exists()


def test_report_folder_has_per_setting_tables_and_no_machine_paths(stores: tuple[Path, Path], tmp_path: Path) -> None:
    from fedx_bench.reports import build_report

    stored, _ = stores
    res = build_report(stored, tmp_path / "reports")
    assert (res.out_dir / "settings.md").read_text().count("### Setting") == 2
    for f in res.files:
        if f.suffix in (".md", ".csv", ".tex"):
            text = f.read_text()
            assert str(tmp_path) not in text and "/machine/data" not in text, f.name
    assert "Setting ids" in (res.out_dir / "index.md").read_text()


def test_empty_side_says_which_store_has_no_runs(stores: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    stored, new = stores
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    assert main(["compare", "--baseline", str(stored), "--new", str(empty)]) == 0
    out = capsys.readouterr().out
    assert "No finished runs under" in out and "nothing to compare" in out and "No overlap" not in out
    assert main(["compare", "--baseline", str(empty), "--new", str(new)]) == 0
    out = capsys.readouterr().out
    assert "no baseline to compare with" in out and "nothing to compare" not in out
    assert main(["compare", "--baseline", str(empty), "--new", str(new), "--strict"]) == 1

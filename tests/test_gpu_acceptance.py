"""The one-call GPU acceptance script (benchmarks/gpu_acceptance.py).

A GPU is lent here rarely and briefly, so the script must work the first time it meets one. Its
``--cpu-smoke`` mode runs every stage at toy size on the CPU through the same code; these tests run it as
a user does (a subprocess from the repository root) and check the report it leaves: every stage present
with a status, the measurements each stage promises, the Markdown tables. Also: without CUDA it skips
cleanly, and a spent budget skips stages with a note instead of running over. Timings are not asserted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
SCRIPT = BENCH / "gpu_acceptance.py"
STAGES = ["correctness", "speed", "projection", "scheduler"]


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
    out = tmp_path_factory.mktemp("gpu-acceptance")
    r = _run(["--cpu-smoke", "--out", str(out)])
    assert r.returncode == 0, r.stdout + r.stderr
    return r, json.loads((out / "gpu_acceptance.json").read_text()), (out / "gpu_acceptance.md").read_text()


def test_cpu_smoke_runs_every_stage(smoke: tuple[subprocess.CompletedProcess[str], dict[str, Any], str]) -> None:
    r, d, md = smoke
    assert d["mode"] == "cpu-smoke" and d["budget_s"] == 480
    assert list(d["stages"]) == STAGES
    for key, st in d["stages"].items():
        assert st["status"] in ("pass", "fail"), (key, st.get("status"), st.get("error"), st.get("note"))
        assert st["checks"], key
        assert all(c["pass"] in (True, False, None) for c in st["checks"]), key
    for key in STAGES:  # timestamped progress lines, start and end of every stage
        title = d["stages"][key]["title"]
        assert re.search(rf"^\[\d\d:\d\d:\d\d \+\s*[0-9.]+s\] {re.escape(title)}: start", r.stdout, re.M), r.stdout
        assert re.search(rf"\] {re.escape(title)}: (pass|fail) in [0-9.]+ s", r.stdout), r.stdout
    assert "## Checks" in md and "## Step speed" in md and "## Paper-scale projection" in md and "## Scheduler" in md
    for st in d["stages"].values():
        assert re.search(rf"^\| {re.escape(st['title'])} \| {st['status']} \|", md, re.M), md


def test_cpu_smoke_measurements(smoke: tuple[subprocess.CompletedProcess[str], dict[str, Any], str]) -> None:
    _, d, _ = smoke
    s1 = d["stages"]["correctness"]
    c1 = {c["check"]: c for c in s1["checks"]}
    assert c1["run finishes"]["pass"] is True and c1["every logged loss finite"]["pass"] is True
    fs = s1["results"]["first_step"]  # CPU NCHW vs CPU channels_last: the same maths, other kernels
    assert fs["device_layout"] == "channels_last" and fs["loss_rel_diff"] <= d["tolerances"]["fp32_loss"]
    assert 0 <= fs["grad_rel_l2_diff"] <= d["tolerances"]["fp32_grad"]
    assert "loss_device_bf16" in fs

    s2 = d["stages"]["speed"]["results"]
    assert s2["gflop_per_step"]["fedx"] > s2["gflop_per_step"]["base"] > 0
    modes = {(x["step"], x["mode"]) for x in s2["rows"]}
    assert modes == {(k, m) for k in ("fedx", "base") for m in ("fp32", "bf16", "bf16+channels_last")}
    assert all(x["ms_per_step"] > 0 and x["anchor_images_per_s"] > 0 and x["mfu_pct"] is None for x in s2["rows"])
    assert any("compile" in n for n in s2["notes"])  # compile is CUDA only: skipped with a note
    c2 = {c["check"]: c for c in d["stages"]["speed"]["checks"]}
    assert c2["every mode measured without error"]["pass"] is True and not s2["errors"]
    assert c2["FedX step MFU, best bf16 mode"]["pass"] is None  # no MFU on a CPU

    s3 = d["stages"]["projection"]["results"]
    assert len(s3["epochs"]) == 4 and all(e["seconds"] > 0 and e["steps"] > 0 for e in s3["epochs"])
    assert s3["suite"] == {"name": "table1", "runs": 90}
    assert set(s3["method_step_factors"]) == {f"{m}{x}" for m in ("simclr", "moco", "byol", "protocl", "fedu")
                                              for x in ("", "+fedx")}
    for p in s3["projection"]:
        assert 0 < p["cifar10_fedsimclr_fedx_run_h"] <= p["cifar10_slowest_run_h"]
        assert p["table1_1gpu_h"] / 8 - 0.01 <= p["table1_8gpu_h"] <= p["table1_1gpu_h"]
    c3 = {c["check"]: c for c in d["stages"]["projection"]["checks"]}
    assert c3.pop("every method's step measured without error")["pass"] is True
    assert len(c3) == 2 and all(c["pass"] is None for c in c3.values())  # the GPU targets: not judged on a CPU

    s4 = d["stages"]["scheduler"]
    runs = s4["results"]["runs"]
    assert len(runs) == 4 and all(x["state"] == "done" for x in runs)
    assert all(x["status_device"] == "cpu" and x["env_device"]["type"] == "cpu" for x in runs)
    assert all(x["start"] < x["end"] for x in runs)
    assert 1 <= max(s4["results"]["max_concurrent_per_device"].values()) <= 2
    assert s4["results"]["makespan_s"] > 0 and s4["results"]["sum_single_run_s"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the skip path is for machines without CUDA")
def test_without_cuda_it_skips_and_writes_nothing(tmp_path: Path) -> None:
    r = _run(["--out", str(tmp_path / "out")], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "skip: CUDA not available"
    assert not (tmp_path / "out").exists()


def test_spent_budget_skips_stages_with_a_note(tmp_path: Path) -> None:
    r = _run(["--cpu-smoke", "--out", str(tmp_path), "--budget-s", "1"], timeout=120)  # imports alone take longer
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads((tmp_path / "gpu_acceptance.json").read_text())
    assert list(d["stages"]) == STAGES
    for st in d["stages"].values():
        assert st["status"] == "skipped" and "budget spent" in st["note"], st
    assert "| skipped |" in (tmp_path / "gpu_acceptance.md").read_text()


def test_bad_budget_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = _run(["--cpu-smoke", "--out", str(tmp_path / "out"), "--budget-s", "0"], timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "gpu_acceptance.py: --budget-s must be > 0, got 0"
    assert not (tmp_path / "out").exists()


def _module() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        import gpu_acceptance
    finally:
        sys.path.remove(str(BENCH))
    return gpu_acceptance


def test_a_stage_that_raises_or_overruns_is_recorded_and_the_next_runs(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The one real run must survive its stages: an error is recorded with its traceback, a stage past its deadline
    is stopped there (even inside code that swallows ``Exception``) with its partial results, the rest still runs,
    and the JSON on disk is complete after each stage."""
    ga = _module()
    monkeypatch.setattr(ga, "T_START", time.perf_counter())
    monkeypatch.setattr(ga, "MIN_STAGE_S", 0.1)
    seen_on_disk: list[list[str]] = []

    def raises(ctx: Any, rec: dict[str, Any]) -> None:
        raise ValueError("broken on purpose")

    def overruns(ctx: Any, rec: dict[str, Any]) -> None:
        seen_on_disk.append(list(json.loads((tmp_path / "gpu_acceptance.json").read_text())["stages"]))
        rec["results"]["partial"] = 1
        try:
            time.sleep(30)
        except Exception:  # noqa: BLE001 - what the runner does per run: must not absorb the deadline
            pass

    def passes(ctx: Any, rec: dict[str, Any]) -> None:
        ga.check(rec, "ok", 1, "1", True)
        ga.check(rec, "not judged", 2, "2", None)

    def fails(ctx: Any, rec: dict[str, Any]) -> None:
        ga.check(rec, "bad", 0, "1", False)

    report = ga.Report(tmp_path, {"mode": "test"})
    ctx = ga.Ctx(True, torch.device("cpu"), ga.TOY, tmp_path, report, None)
    t = time.perf_counter()
    ga.run_stages(ctx, 5.0, {"correctness": raises, "speed": overruns, "projection": passes, "scheduler": fails})
    assert time.perf_counter() - t < 8  # the 30 s sleep was cut at the speed stage's deadline (3 s)
    d = json.loads((tmp_path / "gpu_acceptance.json").read_text())
    st = d["stages"]
    assert st["correctness"]["status"] == "error" and "ValueError: broken on purpose" in st["correctness"]["error"]
    assert "raise ValueError" in st["correctness"]["traceback"]
    assert st["speed"]["status"] == "timeout" and st["speed"]["results"] == {"partial": 1}
    assert st["projection"]["status"] == "pass" and st["scheduler"]["status"] == "fail"
    assert seen_on_disk == [["correctness", "speed"]]  # stage 1's record was on disk before stage 2 ended
    assert "| 2. speed of the paper step | timeout |" in (tmp_path / "gpu_acceptance.md").read_text()


def test_peak_table_concurrency_and_schedule() -> None:
    ga = _module()
    bf16 = {name: (ga.find_peak(name) or (None,))[0] for name in (
        "NVIDIA H100 PCIe", "NVIDIA H100 80GB HBM3", "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA A100-SXM4-80GB",
        "NVIDIA L40S", "NVIDIA L4", "NVIDIA A10G", "NVIDIA A10", "Tesla T4")}
    assert bf16 == {"NVIDIA H100 PCIe": 756.0, "NVIDIA H100 80GB HBM3": 989.4, "NVIDIA H100 NVL": 835.5,
                    "NVIDIA H200": 989.4, "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA L40S": 362.1, "NVIDIA L4": 121.0,
                    "NVIDIA A10G": None, "NVIDIA A10": 125.0, "Tesla T4": None}
    assert ga.max_concurrent([(0, 2), (2, 4), (4, 6)]) == 1  # one ends as the next starts: never two at once
    assert ga.max_concurrent([(0, 5), (1, 2), (1.5, 3), (4, 6)]) == 3
    assert ga.max_concurrent([]) == 0
    durations = [5.0, 4.0, 3.0, 3.0, 3.0, 1.0]
    ms = ga.makespan(durations, 2)
    assert sum(durations) / 2 <= ms <= sum(durations) / 2 + max(durations)
    assert ga.makespan(durations, 1) == sum(durations) and ga.makespan(durations, 10) == max(durations)

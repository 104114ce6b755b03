"""``verify`` re-runs a stored run on CPU into a temporary directory: a tiny synthetic run reproduces exactly, and a
deliberately altered stored metric is reported with its size. New runs record setting_id and the code record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedx_bench import api
from fedx_bench.cli import main
from fedx_bench.config import run_config_from_dict
from fedx_bench.provenance import code_record
from fedx_bench.setting import setting_id
from fedx_bench.store import RunStore

TINY = {"dataset": "synthetic", "model": {"backbone": "cnn4", "width": 4},
        "federation": {"clients": 2, "rounds": 1, "local_epochs": 1, "min_size": 2},
        "optim": {"batch_size": 16}, "eval": {"probe_epochs": 2, "knn_k": 5}}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("verify") / "results"
    cfg = run_config_from_dict(TINY)
    out = api.run_one(cfg, root)
    assert out.state == "done"
    return root, cfg.run_id


def test_new_run_records_setting_and_code(stored: tuple[Path, str]) -> None:
    root, rid = stored
    spec = json.loads((root / "runs" / rid / "spec.json").read_text())
    env = json.loads((root / "runs" / rid / "env.json").read_text())
    assert spec["setting_id"] == setting_id(spec["config"])
    assert env["code"]["numerics_sha256"] == code_record()["numerics_sha256"]
    assert api.stale_runs(root, [rid]).ids == []


def test_verify_reproduces_then_detects_an_altered_metric(stored: tuple[Path, str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    root, rid = stored
    [res] = api.verify(root, [rid])
    assert res.state == "reproduces exactly", res.line()
    path = root / "runs" / rid / "metrics.jsonl"
    original = path.read_text()
    lines = [json.loads(x) for x in original.splitlines()]
    lines[-1]["linear_probe_top1"] += 0.25
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    try:
        [bad] = api.verify(root, [rid])
        assert bad.state == "differs" and bad.max_diff == pytest.approx(0.25, abs=1e-9)
        assert "linear_probe_top1" in bad.where
        assert main(["verify", str(root), rid, "--strict"]) == 1
        assert "0 of 1 runs reproduce exactly" in capsys.readouterr().out
    finally:
        path.write_text(original)


def test_stale_runs_are_counted(stored: tuple[Path, str]) -> None:
    root, rid = stored
    env_path = root / "runs" / rid / "env.json"
    env = json.loads(env_path.read_text())
    env["code"]["numerics_sha256"] = "0" * 64
    env_path.write_text(json.dumps(env))
    st = api.stale_runs(root, [rid])
    assert st.changed == [rid] and "numbers can change" in st.message
    moved = st.archive(RunStore(root))  # what --rerun-stale does before retraining: nothing is deleted
    assert not (root / "runs" / rid).exists() and (moved[0] / "eval.json").exists()


def test_cpu_mismatch_explains_differences_only_across_cpu_types() -> None:
    """CPU kernels differ between CPU types: a difference against a run from another (or an unrecorded) CPU type
    is explained, one from the same type is not."""
    from fedx_bench.provenance import cpu_mismatch

    here = {"type": "cpu", "cpu_model": "Xeon X", "cpu_capability": "AVX512"}
    assert cpu_mismatch({"device": dict(here)}, here) is None
    old = cpu_mismatch({"device": {"type": "cpu", "torch_threads": 1}}, here)
    assert old is not None and "does not record its CPU type" in old
    other = cpu_mismatch({"device": {"type": "cpu", "cpu_model": "EPYC Y", "cpu_capability": "AVX2"}}, here)
    assert other is not None and "EPYC Y (AVX2)" in other and "Xeon X (AVX512)" in other
    assert cpu_mismatch({"device": {"type": "cuda", "name": "H200"}}, here) is None


def test_reference_line_names_the_cpu_when_runs_differ(tmp_path) -> None:
    """The line after `run` says when a stored twin was made on an unrecorded CPU type (and only when it differs)."""
    import json
    from types import SimpleNamespace

    from fedx_bench.reference import compare_to_reference

    for root, probe, dev in (("ours", 45.2, {"type": "cpu", "cpu_model": "A", "cpu_capability": "AVX512"}),
                             ("ref", 44.35, {"type": "cpu", "torch_threads": 1})):
        d = tmp_path / root / "runs" / "r1"
        d.mkdir(parents=True)
        (d / "eval.json").write_text(json.dumps({"metrics": {"linear_probe_top1": {"last": probe}}}))
        (d / "metrics.jsonl").write_text(json.dumps({"round": 1, "linear_probe_top1": probe}) + "\n")
        (d / "env.json").write_text(json.dumps({"device": dev}))
    runs = [SimpleNamespace(run_id="r1", label="simclr/s0")]
    line = compare_to_reference(runs, tmp_path / "ours", tmp_path / "ref").line()
    assert "differs" in line and "0.85" in line and "does not record its CPU type" in line
    same = compare_to_reference(runs, tmp_path / "ref", tmp_path / "ref").line()
    assert "exactly" in same and "CPU" not in same

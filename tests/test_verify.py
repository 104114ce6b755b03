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

"""TensorBoard tracking: `--tensorboard` writes event files per run that TensorBoard's own reader reads back, one
point per round for every loss term, per evaluation for probe/kNN, and the wall time; the run id is unchanged."""

from __future__ import annotations

import json

import pytest
import yaml

from fedx_bench.cli import main
from fedx_bench.config import load_suite

pytest.importorskip("tensorboard")

SUITE = {
    "name": "tb",
    "base": {
        "dataset": {"name": "synthetic", "train_limit": 200},
        "model": {"backbone": "cnn4", "width": 4},
        "federation": {"clients": 2, "rounds": 2, "local_epochs": 1, "min_size": 2},
        "optim": {"batch_size": 16},
        "eval": {"probe_epochs": 2, "knn_k": 5},
        "fedx": True,
    },
}


def test_tensorboard_events_read_back(tmp_path, capsys):
    from fedx_bench.tracking import read_scalars

    p = tmp_path / "tb.yaml"
    p.write_text(yaml.safe_dump(SUITE))
    assert main(["run", str(p), "--results", str(tmp_path / "res"), "--quiet", "--tensorboard"]) == 0
    [run] = list((tmp_path / "res" / "runs").iterdir())
    assert (run / "tensorboard").is_dir()
    sc = read_scalars(run)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for term in rows[1]["losses"]:  # every FedX loss term, every round
        assert [s for s, _ in sc[f"loss/{term}"]] == [1, 2]
        assert sc[f"loss/{term}"][-1][1] == pytest.approx(rows[2]["losses"][term], rel=1e-6)
    for metric in ("linear_probe_top1", "knn_top1"):  # every evaluation, round 0 (random init) included
        assert [s for s, _ in sc[f"eval/{metric}"]] == [0, 1, 2]
        assert [v for _, v in sc[f"eval/{metric}"]] == pytest.approx([r[metric] for r in rows])
    assert [s for s, _ in sc["time/wall_seconds"]] == [0, 1, 2]
    assert len(sc) >= 5 + 3 + 3


def test_log_key_is_not_part_of_the_run_id(tmp_path):
    p = tmp_path / "tb.yaml"
    p.write_text(yaml.safe_dump(SUITE))
    plain = load_suite(p).runs[0].run_id
    assert load_suite(p, {"log.tensorboard": True}).runs[0].run_id == plain

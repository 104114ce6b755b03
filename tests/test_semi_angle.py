"""semi_supervised@v1 and angle@v1: metric functions on constructed inputs with known answers, the labelled
subset, the fine-tune (beats chance, leaves the source model alone), and both protocols end to end with resume."""

import copy
import json
import math

import numpy as np
import pytest
import torch

from fedx_bench.config import expand_suite, run_config_from_dict
from fedx_bench.data import make_synthetic
from fedx_bench.data.augment import build_augment
from fedx_bench.errors import ConfigError
from fedx_bench.evaluation import (
    angles_deg,
    balanced_subset,
    class_angle_structure,
    drift_summary,
    protocol_id,
    semi_supervised_finetune,
)
from fedx_bench.evaluation.angle import frequent_classes
from fedx_bench.models.backbones import CNN4
from fedx_bench.runner import execute_run

# ----------------------------------------------------------------------------------------------- angle@v1


def test_angles_deg_known_values():
    a = torch.tensor([[1.0, 0, 0], [0, 2, 0], [1, 1, 0], [0.3, -0.2, 5.0]])
    b = torch.tensor([[0.0, 3, 0], [0, 5, 0], [-1, -1, 0], [0.3, -0.2, 5.0]])
    got = angles_deg(a, b)
    assert got.dtype == torch.float64 and got.shape == (4,)
    assert torch.allclose(got, torch.tensor([90.0, 0.0, 180.0, 0.0], dtype=torch.float64), atol=1e-6)
    x = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    assert angles_deg(x, 7.0 * x).abs().max() < 1e-5  # scale-invariant; float64 keeps 0 at 0
    with pytest.raises(ValueError):
        angles_deg(x, x[:3])


def _clusters(n_per_class: int, classes: int, d: int, spread: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class a tight cluster around its own orthogonal axis."""
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    feats = torch.eye(d)[labels] + spread * torch.randn(len(labels), d, generator=g)
    return feats, labels


def test_class_structure_separable_clusters():
    feats, labels = _clusters(12, 4, 8, 1e-4)
    out = class_angle_structure(feats, labels)
    assert out["intra"] == pytest.approx(0.0, abs=0.05)
    assert out["inter"] == pytest.approx(90.0, abs=0.05)
    assert out["gap"] == pytest.approx(90.0, abs=0.1)
    assert [c["class"] for c in out["per_class"]] == [0, 1, 2, 3]
    for c in out["per_class"]:
        assert c["intra"] == pytest.approx(0.0, abs=0.05) and c["inter"] == pytest.approx(90.0, abs=0.05)
        assert c["gap"] == pytest.approx(c["inter"] - c["intra"])


def test_class_structure_matches_brute_force_and_chunking():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(37, 5, generator=g)
    labels = torch.tensor([0] * 10 + [1] * 20 + [3] * 6 + [4])  # class 4 has a single image: no intra pair
    z = feats.double() / feats.double().norm(dim=1, keepdim=True)
    ang = torch.rad2deg(torch.arccos((z @ z.t()).clamp(-1, 1)))
    same = labels[:, None] == labels[None, :]
    off = ~torch.eye(37, dtype=torch.bool)
    full = class_angle_structure(feats, labels)
    assert full["intra"] == pytest.approx(float(ang[same & off].mean()), rel=1e-9)
    assert full["inter"] == pytest.approx(float(ang[~same].mean()), rel=1e-9)
    c1 = labels == 1
    per1 = next(c for c in full["per_class"] if c["class"] == 1)
    assert per1["intra"] == pytest.approx(float(ang[c1][:, c1][off[c1][:, c1]].mean()), rel=1e-9)
    assert per1["inter"] == pytest.approx(float(ang[c1][:, ~c1].mean()), rel=1e-9)
    single = next(c for c in full["per_class"] if c["class"] == 4)
    assert single["intra"] is None and single["gap"] is None and single["inter"] is not None
    chunked = class_angle_structure(feats, labels, max_chunk_elements=40)  # one row per chunk
    assert chunked["intra"] == pytest.approx(full["intra"], rel=1e-12)
    assert chunked["inter"] == pytest.approx(full["inter"], rel=1e-12)


def test_frequent_rule_is_uniform_share():
    assert frequent_classes([8, 2, 0]).tolist() == [True, False, False]
    assert frequent_classes([1, 1, 1]).tolist() == [True, True, True]  # exactly 1/C counts as frequent
    assert frequent_classes([5, 5, 0, 0]).tolist() == [True, True, False, False]


def test_drift_summary_split_and_histogram():
    labels = np.array([0, 0, 1, 2])
    counts = np.array([[8, 2, 0], [1, 1, 1]])  # client 0: class 0 frequent, 1 and 2 rare; client 1: all frequent
    angles = {0: torch.tensor([10.0, 20.0, 30.0, 50.0]), 1: torch.tensor([1.0, 3.0, 5.0, 179.99])}
    out = drift_summary(angles, labels, counts, bins=18)
    assert out["bin_edges"] == pytest.approx(list(np.linspace(0, 180, 19)))
    c0, c1 = out["per_client"]["0"], out["per_client"]["1"]
    assert c0["mean"] == pytest.approx(27.5) and c0["median"] == pytest.approx(25.0) and c0["n"] == 4
    assert c0["frequent_mean"] == pytest.approx(15.0) and c0["rare_mean"] == pytest.approx(40.0)
    assert c1["rare_mean"] is None and c1["frequent_mean"] == pytest.approx(c1["mean"])
    assert c0["hist"][1] == 1 and c0["hist"][2] == 1 and c0["hist"][3] == 1 and c0["hist"][5] == 1
    assert c1["hist"][-1] == 1  # the last bin is closed at 180
    pooled = out["pooled"]
    assert pooled["n"] == 8 and sum(pooled["hist"]) == 8 and len(pooled["hist"]) == 18
    assert pooled["mean"] == pytest.approx((27.5 * 4 + sum([1.0, 3.0, 5.0, 179.99])) / 8)
    assert out["frequent"]["mean"] == pytest.approx((10 + 20 + 1 + 3 + 5 + 179.99) / 6)
    assert out["rare"]["mean"] == pytest.approx(40.0)
    assert sum(out["frequent"]["hist"]) + sum(out["rare"]["hist"]) == 8


# -------------------------------------------------------------------------------------- semi_supervised@v1


def test_balanced_subset_exact_balanced_seeded():
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.full(40 + 7 * c, c) for c in range(10)])
    rng.shuffle(labels)
    n = len(labels)
    for frac in (0.01, 0.1, 0.37):
        ix = balanced_subset(labels, frac, seed=3)
        assert len(ix) == math.floor(frac * n + 0.5)
        assert np.all(np.diff(ix) > 0) and ix.dtype == np.int64  # sorted, no duplicates
        per_class = np.bincount(labels[ix], minlength=10)
        assert per_class.max() - per_class.min() <= 1
    a, b, c = (balanced_subset(labels, 0.1, seed=s) for s in (5, 5, 6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert set(balanced_subset(labels, 0.01, 5)) <= set(balanced_subset(labels, 0.1, 5))  # same seed: nested
    small = np.array([0] * 100 + [1] * 100 + [2] * 2)  # class 2 cannot fill its quota of 20
    ix = balanced_subset(small, 0.3, seed=0)
    assert len(ix) == 61 and np.bincount(small[ix]).tolist() in ([30, 29, 2], [29, 30, 2])
    with pytest.raises(ValueError):
        balanced_subset(labels, 0.0001, seed=0)


def _synthetic_problem():
    ds = make_synthetic(train_per_class=12, test_per_class=10)
    aug = build_augment("reference-cifar", ds.mean, ds.std, 32)
    return ds, aug


@pytest.mark.parametrize("freeze", [False, True])
def test_finetune_beats_chance_and_keeps_source(freeze):
    ds, aug = _synthetic_problem()
    torch.manual_seed(0)
    enc = CNN4(3, width=4)
    enc.train()
    before = copy.deepcopy(enc.state_dict())
    rng_state = torch.get_rng_state()
    kw = dict(augment=aug, mean=ds.mean, std=ds.std, num_classes=10, epochs=16 if freeze else 6, batch_size=32,
              freeze_backbone=freeze, seed=1)
    args = (torch.from_numpy(ds.train_x), torch.from_numpy(ds.train_y), torch.from_numpy(ds.test_x),
            torch.from_numpy(ds.test_y))
    r = semi_supervised_finetune(enc, *args, **kw)
    assert r["top1"] > 30.0 and 0 <= r["top1"] <= r["top5"] <= 100  # chance is 10%
    for k, v in enc.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert enc.training and all(p.requires_grad for p in enc.parameters())
    assert torch.equal(torch.get_rng_state(), rng_state)  # private generators only
    if not freeze:
        assert semi_supervised_finetune(enc, *args, **kw) == r  # seeded: repeatable


# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "ev,needle",
    [
        ({"angle_rounds": [3]}, "eval.angle_rounds"),
        ({"angle_rounds": [0]}, "eval.angle_rounds"),
        ({"angle_bins": 0}, "eval.angle_bins"),
        ({"semi_fractions": [0.0]}, "eval.semi_fractions"),
        ({"semi_fractions": [0.1, 0.1]}, "eval.semi_fractions"),
        ({"semi_epochs": 0}, "eval.semi_epochs"),
        ({"semi_lr_head": 0}, "eval.semi_lr_head"),
        ({"semi_freeze_backbone": "yes"}, "eval.semi_freeze_backbone"),
    ],
)
def test_bad_eval_knobs_name_the_key(ev, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        run_config_from_dict({"federation": {"rounds": 2}, "eval": ev})


def test_defaults_and_versions():
    e = run_config_from_dict({}).eval
    assert e.protocols == ["linear_probe", "knn"] and e.semi_fractions == [0.01, 0.1] and e.semi_epochs == 50
    assert (e.semi_lr_backbone, e.semi_lr_head, e.semi_weight_decay, e.semi_batch_size) == (0.01, 0.1, 5e-4, 64)
    assert e.angle_rounds == [] and e.angle_bins == 90 and e.semi_seed is None
    assert protocol_id("semi_supervised") == "semi_supervised@v1" and protocol_id("angle") == "angle@v1"


# ------------------------------------------------------------------------------------------- end to end

TINY = {
    "name": "tiny-semi-angle",
    "base": {
        "dataset": "synthetic",
        "model": {"backbone": "cnn4", "width": 4},
        "federation": {"clients": 2, "rounds": 2, "local_epochs": 1, "min_size": 2},
        "optim": {"batch_size": 32},
        "eval": {"protocols": ["linear_probe", "semi_supervised", "angle"], "probe_epochs": 2,
                 "semi_epochs": 2, "angle_rounds": [1, 2], "angle_bins": 36},
    },
    "grid": {"fedx": [False], "seed": [4]},
}


def _strip_seconds(obj):
    if isinstance(obj, dict):
        return {k: _strip_seconds(v) for k, v in obj.items() if not k.endswith("_seconds")}
    if isinstance(obj, list):
        return [_strip_seconds(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    cfg = expand_suite(TINY).runs[0]
    root = tmp_path_factory.mktemp("full")
    out = execute_run(cfg, root)
    assert out.state == "done", out.error
    return cfg, root / "runs" / cfg.run_id


def test_e2e_writes_semi_and_angle_formats(uninterrupted):
    cfg, d = uninterrupted
    ev = json.loads((d / "eval.json").read_text())
    semi = ev["semi_supervised"]
    assert semi["protocol"] == "semi_supervised@v1" and semi["round"] == 2 and semi["seed"] == 4
    assert set(semi["results"]) == {"0.01", "0.1"}
    for frac, r in semi["results"].items():
        assert r["n_labelled"] == round(float(frac) * 400)
        assert 0 <= r["top1"] <= r["top5"] <= 100
    # the floor: the same fine-tune from the random-init encoder, on the same labelled subsets
    assert set(semi["init"]) == {"0.01", "0.1"}
    for frac, r in semi["init"].items():
        assert r["subset_sha256"] == semi["results"][frac]["subset_sha256"] and 0 <= r["top1"] <= 100
    assert ev["protocols"]["semi_supervised"] == "v1" and ev["protocols"]["angle"] == "v1"
    spec = json.loads((d / "spec.json").read_text())
    assert spec["protocols"]["semi_supervised"] == "v1" and spec["protocols"]["angle"] == "v1"

    ang = json.loads((d / "angle.json").read_text())
    assert ang["protocol"] == "angle@v1" and set(ang["rounds"]) == {"1", "2"}
    for rec in ang["rounds"].values():
        drift = rec["drift"]
        assert len(drift["bin_edges"]) == 37 and drift["bin_edges"][0] == 0 and drift["bin_edges"][-1] == 180
        assert drift["pooled"]["n"] == 2 * 200 == sum(drift["pooled"]["hist"])
        assert set(drift["pooled"]) >= {"mean", "median", "hist", "n"}
        assert set(drift["per_client"]) == {"0", "1"}
        for c in drift["per_client"].values():
            assert set(c) >= {"mean", "median", "hist", "n", "frequent_mean", "rare_mean"} and c["n"] == 200
            assert 0 <= c["mean"] <= 180
        assert sum(drift["frequent"]["hist"]) + sum(drift["rare"]["hist"]) == drift["pooled"]["n"]
        assert set(drift["frequent"]) >= {"mean", "hist"} and set(drift["rare"]) >= {"mean", "hist"}
        cs = rec["class_structure"]
        assert cs["gap"] == pytest.approx(cs["inter"] - cs["intra"])
        assert [c["class"] for c in cs["per_class"]] == list(range(10))
        assert all(set(c) == {"class", "intra", "inter", "gap"} for c in cs["per_class"])
    rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["angle_drift_mean"] == ang["rounds"]["2"]["drift"]["pooled"]["mean"]
    assert all("linear_probe_top1" in r for r in rows)


def test_resume_keeps_angle_and_semi_exact(uninterrupted, tmp_path):
    cfg, full = uninterrupted
    stopped = execute_run(cfg, tmp_path, stop_after_round=1)
    assert stopped.state == "stopped"
    d = tmp_path / "runs" / cfg.run_id
    assert set(json.loads((d / "angle.json").read_text())["rounds"]) == {"1"}
    resumed = execute_run(cfg, tmp_path)
    assert resumed.state == "done", resumed.error

    def load(p, key=None):
        doc = json.loads(p.read_text())
        return _strip_seconds(doc[key] if key else doc)

    assert load(d / "angle.json") == load(full / "angle.json")
    assert load(d / "eval.json", "semi_supervised") == load(full / "eval.json", "semi_supervised")
    rows = [_strip_seconds(json.loads(x)) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert rows == [_strip_seconds(json.loads(x)) for x in (full / "metrics.jsonl").read_text().splitlines()]


def test_analysis_does_not_change_training(uninterrupted, tmp_path):
    """Angle feature passes and the semi-supervised fine-tune draw no random numbers and leave the model alone."""
    cfg, full = uninterrupted
    doc = copy.deepcopy(TINY)
    doc["base"]["eval"]["protocols"] = ["linear_probe"]
    plain = expand_suite(doc).runs[0]
    assert execute_run(plain, tmp_path).state == "done"
    keys = ("losses", "linear_probe_top1", "linear_probe_top5")

    def rows(d):
        return [{k: r.get(k) for k in keys} for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())]

    assert rows(tmp_path / "runs" / plain.run_id) == rows(full)

"""Beyond the paper: FedSimSiam, FedEMA and the L-DAWA aggregator (each ± FedX), the aggregation seam that
FedAvg now goes through, the plug-in VICReg example and the beyond suites."""

import copy
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fedx_bench import api
from fedx_bench.aggregation import AGGREGATORS, Aggregate, fedavg, layer_cosines, ldawa
from fedx_bench.cli import main as cli_main
from fedx_bench.config import RunConfig, load_suite, run_config_from_dict
from fedx_bench.errors import ConfigError
from fedx_bench.federated import FederatedTrainer
from fedx_bench.methods import FedX
from fedx_bench.methods.fedema import FedEMA, divergence_weights, ema_mu
from fedx_bench.methods.simsiam import SimSiam, simsiam_loss
from fedx_bench.models import CNN4
from fedx_bench.registry import METHODS
from fedx_bench.reports import results_frame
from fedx_bench.runner import build_method

ROOT = Path(__file__).resolve().parents[1]
B, PROJ = 6, 8
X = torch.randn(B, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _views():
    g = torch.Generator().manual_seed(1)
    return X, X + 0.1 * torch.randn(X.shape, generator=g), torch.randn(X.shape, generator=g)


def _cfg(method: str, fedx: bool = False, args: dict | None = None, **kw) -> RunConfig:
    d = {
        "method": method,
        "method_args": args or {},
        "model": {"backbone": "cnn4", "width": 4, "proj_hidden": 16, "proj_dim": PROJ},
        "dataset": "synthetic",
        "fedx": fedx,
    }
    d.update(kw)
    return run_config_from_dict(d)


def _direct(cls, **args):
    torch.manual_seed(0)
    return cls(CNN4(in_channels=3, width=4), cls.parse_args(args), proj_hidden=16, proj_dim=PROJ)


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 16, 16, 3), dtype=torch.uint8, generator=g)


def _transform(x):
    return x.permute(0, 3, 1, 2).float() / 255


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    x = _transform(x)
    return x + 0.05 * torch.randn(x.shape, generator=g, device=x.device)


def _trainer(cfg: RunConfig, n: int = 40, sizes: tuple[int, int] = (15, 25)) -> FederatedTrainer:
    parts = [np.arange(0, sizes[0]), np.arange(sizes[0], sizes[0] + sizes[1])]
    return FederatedTrainer(cfg, build_method(cfg, 3), _images(n, seed=9), parts, _augment, torch.device("cpu"),
                            transform=_transform)


# --------------------------------------------------------------------------- registry, config, run id


def test_registered_with_display_names_and_listed():
    from fedx_bench.methods import display_name

    assert display_name("simclr@ldawa") == "FedSimCLR + L-DAWA" and display_name("simsiam") == "FedSimSiam"
    assert METHODS.meta("simsiam")["display"] == "FedSimSiam" and METHODS.meta("fedema")["display"] == "FedEMA"
    aggs = dict(api.list_registry("aggregators"))
    assert set(aggs) == {"fedavg", "ldawa"} and all(aggs.values())
    assert AGGREGATORS.meta("ldawa")["display"] == "L-DAWA"


def test_list_aggregators_cli(capsys):
    cli_main(["list", "aggregators"])
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["fedavg", "ldawa"]


def test_aggregator_is_part_of_the_run_id_but_the_default_leaves_ids_unchanged():
    base = _cfg("simclr")
    explicit = _cfg("simclr", federation={"aggregator": "fedavg"})
    other = _cfg("simclr", federation={"aggregator": "ldawa"})
    assert base.federation.aggregator == "fedavg" and "aggregator" not in base.identity()["federation"]
    assert explicit.run_id == base.run_id
    assert other.run_id != base.run_id and other.identity()["federation"]["aggregator"] == "ldawa"
    assert other.label == "simclr@ldawa/synthetic/s0"
    # every stored run of a FedAvg suite still has the id it was stored under (table1-cpu's runs were removed from
    # the store as made by uncommitted trees; ablation-cpu's, sensitivity-clients-cpu's and beyond-cpu's (L-DAWA ids
    # included) are stored)
    for name in ("ablation-cpu", "sensitivity-clients-cpu", "beyond-cpu"):
        ids = [r.run_id for r in load_suite(ROOT / "suites" / f"{name}.yaml").runs]
        assert ids and all((ROOT / "results" / "runs" / i).is_dir() for i in ids)


def test_unknown_aggregator_is_a_config_error_naming_the_key(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"federation\.aggregator.*'ldawa'"):
        _cfg("simclr", federation={"aggregator": "ldawaa"})
    suite = tmp_path / "s.yaml"
    suite.write_text("base: {dataset: synthetic, federation: {aggregator: median}}\n")
    assert cli_main(["run", str(suite), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "federation.aggregator" in err[0] and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "method,args",
    [("simsiam", {"pred_hidden": 0}), ("fedema", {"tau": 0.0}), ("fedema", {"tau": 1.5}),
     ("fedema", {"scaler": -1.0}), ("fedema", {"tua": 0.5})],
)
def test_bad_method_args_are_config_errors(method, args):
    with pytest.raises(ConfigError):
        _cfg(method, args=args)


# --------------------------------------------------------------------------- one step


def _frozen(m):
    return list(m.target_encoder.parameters()) + list(m.target_projector.parameters()) if isinstance(m, FedEMA) else []


@pytest.mark.parametrize("method", ["simsiam", "fedema"])
@pytest.mark.parametrize("fedx", [False, True])
def test_step_shapes_finite_loss_and_gradients(method, fedx):
    m = build_method(_cfg(method, fedx), 3)
    m.on_round_start(1, None)
    x1, x2, xr = _views()
    out = m.training_step(x1, x2, xr if fedx else None)
    assert out.z1.shape == (B, PROJ) and out.z2.shape == (B, PROJ)
    assert (out.zr is not None and out.zr.shape == (B, PROJ)) if fedx else out.zr is None
    assert torch.isfinite(out.loss) and out.loss.ndim == 0 and "loss_local_contrastive" in out.logs
    if fedx:
        assert {"loss_local_relational", "loss_global_contrastive", "loss_global_relational"} <= set(out.logs)
    out.loss.backward()
    base = m.base if isinstance(m, FedX) else m
    frozen = _frozen(base)
    assert all(not p.requires_grad and p.grad is None for p in frozen)
    assert not {id(p) for p in frozen} & {id(p) for p in m.trainable_parameters()}
    assert all(p.grad is not None for p in m.trainable_parameters())
    assert all(p.grad is not None for p in base.predictor.parameters())
    if method == "fedema":
        assert frozen  # the EMA target exists and got no gradient


def test_simsiam_head_sizes_and_no_local_state():
    m = _direct(SimSiam)
    assert m.predictor[0].out_features == PROJ // 4 and isinstance(m.projector[1], torch.nn.BatchNorm1d)
    assert _direct(SimSiam, pred_hidden=5).predictor[0].out_features == 5
    assert m.local_prefixes == () and m.client_state() == {}
    assert not hasattr(m, "target_encoder")  # no momentum encoder


def test_simsiam_stop_gradient():
    g = torch.Generator().manual_seed(3)
    p1, p2, z1, z2 = (torch.randn(4, PROJ, generator=g, requires_grad=True) for _ in range(4))
    loss = simsiam_loss(p1, p2, z1, z2)
    loss.backward()
    assert z1.grad is None and z2.grad is None  # the targets are stop-gradient
    assert p1.grad is not None and p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0
    same = torch.randn(4, PROJ, generator=g)
    assert float(simsiam_loss(same, same, same, same)) == pytest.approx(-1.0, abs=1e-6)
    # through the model's predictor: the projections get gradient only via the predictor path, i.e. the same
    # gradient as with the targets replaced by constants, and not the one without stop-gradient
    m = _direct(SimSiam)
    z1 = torch.randn(B, PROJ, generator=g, requires_grad=True)
    z2 = torch.randn(B, PROJ, generator=g, requires_grad=True)
    cos = torch.nn.functional.cosine_similarity

    def grad_z1(loss_fn):
        p = m.predictor(torch.cat([z1, z2]))
        return torch.autograd.grad(loss_fn(p[:B], p[B:]), z1)[0]

    c1, c2 = z1.detach().clone(), z2.detach().clone()
    got = grad_z1(lambda p1, p2: simsiam_loss(p1, p2, z1, z2))
    const = grad_z1(lambda p1, p2: -0.5 * (cos(p1, c2, dim=1).mean() + cos(p2, c1, dim=1).mean()))
    no_sg = grad_z1(lambda p1, p2: -0.5 * (cos(p1, z2, dim=1).mean() + cos(p2, z1, dim=1).mean()))
    assert torch.allclose(got, const, atol=1e-8) and not torch.allclose(got, no_sg, atol=1e-6)


# --------------------------------------------------------------------------- FedEMA


def test_ema_mu_formula():
    assert ema_mu(0.0, 5.0) == 0.0  # no divergence: keep the global model
    assert ema_mu(0.1, 3.0) == pytest.approx(0.3)
    assert ema_mu(10.0, 3.0) == 1.0  # clipped at 1: keep the local model
    assert ema_mu(0.5, None) == 0.0  # λ not measured yet


def _set_divergence(m: FedEMA, d: float) -> None:
    """Move every divergence tensor of the encoder by exactly d (L2) and every other mixed parameter by +0.5."""
    with torch.no_grad():
        ws = {id(w) for w in divergence_weights(m.encoder)}
        for i, w in enumerate(divergence_weights(m.encoder)):
            direction = torch.randn(w.shape, generator=torch.Generator().manual_seed(i))
            w.add_(d * direction / direction.norm())
        for mod in (m.encoder, m.projector, m.predictor):
            for p in mod.parameters():
                if id(p) not in ws:
                    p.add_(0.5)


def _round_trip(m: FedEMA, d: float, scaler_state=None):
    """Round 1 (first participation), 'local training' moving the model by d, then round 2 with a new global
    model equal to round 1's. Returns (global params, local params, state)."""
    m.on_round_start(1, None)
    glob = {k: v.clone() for k, v in m.shared_state().items()}
    assert m.last_mu is None and m.round_stats() == {}  # first participation: the global model as received
    _set_divergence(m, d)
    state = m.client_state()
    if scaler_state is not None:
        state["fedema_scaler"] = scaler_state
    local = {k: v.clone() for k, v in state["fedema_online"].items()}
    m.load_shared_state(glob)
    m.on_round_start(2, state)
    return glob, local, state


def _check_mix(m: FedEMA, glob, local, mu: float) -> None:
    for k, p in m._mixed_parameters().items():
        expected = (1 - mu) * glob[k] + mu * local[k]
        assert torch.allclose(p, expected, atol=1e-6), k


@pytest.mark.parametrize("d,scaler,mu", [(0.2, 1e-6, 2e-7), (0.2, 1.5, 0.3), (0.2, 50.0, 1.0), (3.0, 1.0, 1.0)])
def test_fedema_mu_on_constructed_divergences(d, scaler, mu):
    m = _direct(FedEMA, scaler=scaler)
    glob, local, _ = _round_trip(m, d)
    assert m.last_divergence == pytest.approx(d, abs=1e-5)
    assert m.last_mu == pytest.approx(mu, rel=1e-4)
    _check_mix(m, glob, local, m.last_mu)
    if mu == 1.0:  # clipped: exactly the local model
        assert all(torch.equal(p, local[k]) for k, p in m._mixed_parameters().items())
    # BN statistics and the FedX-free rest come from the global model
    for k, v in m.encoder.state_dict().items():
        if "running" in k:
            assert torch.equal(v, glob["encoder." + k])


def test_fedema_zero_divergence_keeps_the_global_model():
    m = _direct(FedEMA)  # autoscaler
    glob, local, _ = _round_trip(m, 0.0)  # encoder conv weights unchanged, other parameters moved
    assert m.last_divergence == 0.0 and m.last_mu == 0.0 and m._scaler is None
    for k, p in m._mixed_parameters().items():
        assert torch.equal(p, glob[k]), k
    assert any(not torch.equal(local[k], glob[k]) for k in local)


def test_fedema_autoscaler_gives_mu_tau_then_keeps_lambda():
    m = _direct(FedEMA, tau=0.6)
    glob, local, _ = _round_trip(m, 0.25)
    assert m._scaler == pytest.approx(0.6 / 0.25, rel=1e-4) and m.last_mu == pytest.approx(0.6, rel=1e-5)
    _check_mix(m, glob, local, 0.6)
    stats = m.round_stats()
    assert stats["fedema_mu"] == pytest.approx(0.6) and stats["fedema_scaler"] == pytest.approx(2.4, rel=1e-4)
    # the next round uses the stored λ with the new divergence: μ = min(λ·d', 1)
    state = m.client_state()
    assert state["fedema_scaler"] == pytest.approx(2.4, rel=1e-4)
    m.on_round_start(3, state)  # the "global" is now the mixed model itself: divergence 0 → μ 0
    assert m.last_mu == 0.0
    m2 = _direct(FedEMA, tau=0.6)
    _round_trip(m2, 0.1, scaler_state=2.4)
    assert m2.last_mu == pytest.approx(0.24, rel=1e-4)


def test_fedema_state_survives_a_checkpoint_round_trip(tmp_path):
    m = _direct(FedEMA)
    _round_trip(m, 0.3)
    state = m.client_state()
    torch.save(state, tmp_path / "s.pt")
    back = torch.load(tmp_path / "s.pt")
    assert set(back) == {"tensors", "fedema_online", "fedema_scaler"}
    assert back["fedema_scaler"] == pytest.approx(state["fedema_scaler"])
    assert all(torch.equal(back["fedema_online"][k], v) for k, v in state["fedema_online"].items())
    assert all(k.startswith("target_") for k in back["tensors"])


@pytest.mark.parametrize("fedx", [False, True])
def test_fedema_resume_from_checkpoint_file_repeats_exactly(tmp_path, fedx):
    """The trainer's checkpoint (through torch.save) carries every client's λ and local online network: a fresh
    trainer loaded after round 2 reproduces round 3 bit for bit."""
    cfg = _cfg("fedema", fedx, federation={"clients": 2, "rounds": 3, "local_epochs": 1}, optim={"batch_size": 8})
    a = _trainer(cfg)
    a.run_round()
    a.run_round()
    torch.save(a.state_dict(), tmp_path / "ckpt.pt")
    r3 = a.run_round()
    b = _trainer(cfg)
    b.load_state_dict(torch.load(tmp_path / "ckpt.pt"))
    assert all(b.client_states[k]["fedema_scaler"] is not None for k in (0, 1))
    r3b = b.run_round()
    assert r3.extra["method_stats"] == r3b.extra["method_stats"]
    for k, v in a.global_model.state_dict().items():
        assert torch.equal(v, b.global_model.state_dict()[k]), k


# --------------------------------------------------------------------------- L-DAWA


def test_ldawa_layer_cosines_parallel_orthogonal_opposite():
    g = {"w": torch.tensor([1.0, 2.0, 2.0])}
    cases = {
        "parallel": ([2.0, 4.0, 4.0], 1.0),
        "orthogonal": ([2.0, -1.0, 0.0], 0.0),
        "opposite": ([-0.5, -1.0, -1.0], -1.0),
        "general": ([3.0, 0.0, 0.0], 1.0 / 3.0),  # <g, c> = 3, ‖g‖ = 3, ‖c‖ = 3
    }
    for name, (c, expected) in cases.items():
        assert layer_cosines({"w": torch.tensor(c)}, g, ["w"])["w"] == pytest.approx(expected, abs=1e-12), name


def test_ldawa_per_layer_weights_against_hand_computed_values():
    """Two layers whose client angles differ, a float buffer and an integer buffer, three clients:
    W_g^l ← (1/3) Σ_k δ_k^l W_k^l per layer, buffers the plain mean."""
    glob = {"a": torch.tensor([1.0, 2.0, 2.0]), "b": torch.tensor([1.0, 0.0]),
            "bn.running_mean": torch.tensor([0.0, 0.0]), "bn.num_batches_tracked": torch.tensor(3)}
    c1 = {"a": torch.tensor([2.0, 4.0, 4.0]), "b": torch.tensor([0.0, 1.0]),  # a parallel, b orthogonal
          "bn.running_mean": torch.tensor([3.0, 0.0]), "bn.num_batches_tracked": torch.tensor(5)}
    c2 = {"a": torch.tensor([2.0, -1.0, 0.0]), "b": torch.tensor([1.0, 0.0]),  # a orthogonal, b parallel
          "bn.running_mean": torch.tensor([0.0, 3.0]), "bn.num_batches_tracked": torch.tensor(5)}
    c3 = {"a": torch.tensor([3.0, 0.0, 0.0]), "b": torch.tensor([-2.0, 0.0]),  # a cos 1/3, b opposite
          "bn.running_mean": torch.tensor([0.0, 0.0]), "bn.num_batches_tracked": torch.tensor(6)}
    out, deltas = ldawa([c1, c2, c3], glob, frozenset({"a", "b"}))
    assert [d["a"] for d in deltas] == pytest.approx([1.0, 0.0, 1 / 3])
    assert [d["b"] for d in deltas] == pytest.approx([0.0, 1.0, -1.0])
    # a: (1/3)(1·[2,4,4] + 0·[2,−1,0] + (1/3)·[3,0,0]) = [1, 4/3, 4/3]
    assert torch.allclose(out["a"], torch.tensor([1.0, 4 / 3, 4 / 3]), atol=1e-6)
    # b: (1/3)(0·[0,1] + 1·[1,0] + (−1)·[−2,0]) = [1, 0]
    assert torch.allclose(out["b"], torch.tensor([1.0, 0.0]), atol=1e-6)
    assert torch.allclose(out["bn.running_mean"], torch.tensor([1.0, 1.0]), atol=1e-6)
    assert out["bn.num_batches_tracked"].dtype == torch.int64 and int(out["bn.num_batches_tracked"]) == 5
    # client data sizes do not enter (the paper's 1/K); stats summarise δ
    agg = AGGREGATORS.get("ldawa")([c1, c2, c3], [1, 100, 1], glob, frozenset({"a", "b"}))
    assert torch.equal(agg.state["a"], out["a"])
    assert agg.stats["ldawa_cos_min"] == pytest.approx(-1.0)
    assert agg.stats["ldawa_cos_mean"] == pytest.approx((1 + 0 + 1 / 3 + 0 + 1 - 1) / 6)


def test_ldawa_zero_norm_layer_counts_fully():
    glob = {"bias": torch.zeros(3)}
    out, deltas = ldawa([{"bias": torch.tensor([1.0, 0, 0])}, {"bias": torch.tensor([0, 3.0, 0])}], glob,
                        frozenset({"bias"}))
    assert deltas[0]["bias"] == 1.0 and torch.allclose(out["bias"], torch.tensor([0.5, 1.5, 0.0]))


@pytest.mark.parametrize("k", [2, 3])
def test_ldawa_clients_equal_to_the_global_model_leave_it_unchanged(k):
    m = build_method(_cfg("byol", True), 3)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1)  # no zero-norm layers, no trivial values
    glob = {kk: v.clone() for kk, v in m.shared_state().items()}
    keys = frozenset(n for n, _ in m.named_parameters())
    agg = AGGREGATORS.get("ldawa")([copy.deepcopy(glob) for _ in range(k)], [3] * k, glob, keys)
    for kk, v in glob.items():
        assert agg.state[kk].dtype == v.dtype
        assert torch.allclose(agg.state[kk].double(), v.double(), rtol=1e-6, atol=0), kk
    assert agg.stats["ldawa_cos_mean"] == pytest.approx(1.0) and agg.stats["ldawa_cos_min"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- FedAvg through the seam


def test_fedavg_through_the_seam_is_the_fedavg_rule_with_the_rounds_inputs(monkeypatch):
    """The trainer calls the configured aggregator with the clients' states, their sizes and the round-start
    global model, and the registered fedavg returns exactly ``fedavg(states, weights)``."""
    cfg = _cfg("byol", federation={"clients": 2, "rounds": 1, "local_epochs": 1}, optim={"batch_size": 8})
    seen = {}
    registered = AGGREGATORS.get("fedavg")

    def spy(states, weights, global_state, param_keys):
        seen.update(states=copy.deepcopy(states), weights=list(weights), glob=copy.deepcopy(global_state),
                    keys=param_keys)
        return registered(states, weights, global_state, param_keys)

    t = _trainer(cfg)
    start = {k: v.clone() for k, v in t.global_model.shared_state().items()}
    monkeypatch.setattr(t, "aggregator", spy)
    res = t.run_round()
    assert seen["weights"] == [15, 25] and "aggregator_stats" not in res.extra
    assert all(torch.equal(seen["glob"][k], v) for k, v in start.items())
    assert any(k.startswith("encoder.") for k in seen["keys"])
    assert not any("running_mean" in k for k in seen["keys"])
    expected = fedavg(seen["states"], seen["weights"])
    for k, v in t.global_model.shared_state().items():
        assert torch.equal(v, expected[k]), k
    assert isinstance(registered(seen["states"], [1, 1], seen["glob"], seen["keys"]), Aggregate)


# --------------------------------------------------------------------------- end to end


CASES = [("simsiam", "fedavg"), ("fedema", "fedavg"), ("simclr", "ldawa"), ("byol", "ldawa")]


@pytest.mark.parametrize("method,aggregator", CASES)
@pytest.mark.parametrize("fedx", [False, True])
def test_two_clients_two_rounds_end_to_end(method, aggregator, fedx):
    cfg = _cfg(method, fedx, federation={"clients": 2, "rounds": 2, "local_epochs": 1, "aggregator": aggregator},
               optim={"batch_size": 8, "lr": 0.05})
    t = _trainer(cfg, sizes=(20, 20))
    before = {k: v.clone() for k, v in t.global_model.shared_state().items()}
    results = [t.run_round() for _ in range(2)]
    for res in results:
        assert res.steps == 4 and res.losses and all(math.isfinite(v) for v in res.losses.values()), res.losses
        if fedx:
            assert "loss_global_relational" in res.losses
        if aggregator == "ldawa":
            st = res.extra["aggregator_stats"]
            assert -1.0 <= st["ldawa_cos_min"] <= st["ldawa_cos_mean"] <= 1.0
        else:
            assert "aggregator_stats" not in res.extra
    after = t.global_model.shared_state()
    assert all(torch.isfinite(v.double()).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)
    if method == "fedema":  # round 2 is every client's first EMA update: μ = τ (0.7) exactly
        assert "method_stats" not in results[0].extra
        assert results[1].extra["method_stats"]["fedema_mu"] == pytest.approx(0.7)
        assert all(t.client_states[k]["fedema_scaler"] > 0 for k in (0, 1))


TINY = {
    "dataset": "synthetic",
    "dataset.source": "auto",
    "model.backbone": "cnn4",
    "model.width": 4,
    "federation.clients": 2,
    "federation.rounds": 1,
    "federation.local_epochs": 1,
    "federation.min_size": 2,
    "optim.batch_size": 16,
    "eval.probe_epochs": 2,
    "eval.knn_k": 5,
}


def test_ldawa_runs_store_their_stats_and_report_as_their_own_rows(tmp_path):
    doc = tmp_path / "s.yaml"
    doc.write_text("name: tiny-ldawa\nbase: {method: simclr}\ncases: [{}, {federation: {aggregator: ldawa}}]\n")
    suite = load_suite(doc, overrides=TINY)
    res = api.run_suite(suite, tmp_path / "res", progress="quiet")
    assert res.counts["done"] == 2
    rid = next(r.run_id for r in suite.runs if r.federation.aggregator == "ldawa")
    lines = [json.loads(x) for x in (tmp_path / "res" / "runs" / rid / "metrics.jsonl").read_text().splitlines()]
    trained = [x for x in lines if x.get("round", 0) >= 1 and "aggregator_stats" in x]
    assert trained and -1 <= trained[0]["aggregator_stats"]["ldawa_cos_mean"] <= 1
    # the report keeps FedAvg and L-DAWA runs of one method apart (never averaged together)
    frame = results_frame(tmp_path / "res")
    assert sorted(frame["method"]) == ["simclr", "simclr@ldawa"]
    assert sorted(frame["aggregator"]) == ["fedavg", "ldawa"]
    table = api.report(tmp_path / "res").splitlines()
    rows = [line.split("|")[1].strip() for line in table if line.startswith("| Fed")]
    assert rows == ["FedSimCLR", "FedSimCLR + L-DAWA"]


def test_plugin_vicreg_example_runs_with_and_without_fedx(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    suite = load_suite(ROOT / "examples" / "vicreg-cpu.yaml", overrides=TINY)
    assert {r.method for r in suite.runs} == {"my_vicreg:VICReg"} and len(suite.runs) == 2
    assert "vicreg" not in METHODS  # not built in
    res = api.run_suite(suite, tmp_path / "res", progress="quiet")
    assert res.counts["done"] == 2
    assert "my_vicreg" in sys.modules
    from my_vicreg import VICReg, VICRegArgs, vicreg_loss

    # the loss on a dummy batch: finite, all three terms, gradients reach the encoder
    m = VICReg(CNN4(in_channels=3, width=4), VICRegArgs(), proj_hidden=16, proj_dim=PROJ)
    x1, x2, _ = _views()
    out = m.training_step(x1, x2)
    assert torch.isfinite(out.loss) and {"term_invariance", "term_variance", "term_covariance"} <= set(out.logs)
    out.loss.backward()
    assert all(p.grad is not None for p in m.trainable_parameters())
    # identical views: no invariance term; collapsed embeddings: the variance hinge is at its maximum
    z = torch.randn(16, PROJ, generator=torch.Generator().manual_seed(5))
    _, t = vicreg_loss(z, z, VICRegArgs())
    assert float(t["term_invariance"]) == 0.0
    _, t = vicreg_loss(torch.zeros(16, PROJ), torch.zeros(16, PROJ), VICRegArgs())
    assert float(t["term_variance"]) == pytest.approx(2 * (1 - 1e-2), abs=1e-6)


# --------------------------------------------------------------------------- suites


def test_beyond_suites_share_the_table1_baselines_setting():
    cpu = load_suite(ROOT / "suites" / "beyond-cpu.yaml")
    rows = {(r.method, r.federation.aggregator) for r in cpu.runs}
    assert rows == {("simsiam", "fedavg"), ("fedema", "fedavg"), ("simclr", "ldawa"), ("byol", "ldawa"),
                    ("simclr", "fedavg"), ("byol", "fedavg")}
    assert {r.seed for r in cpu.runs} == {0, 1, 2} and {r.fedx.enabled for r in cpu.runs} == {False, True}
    assert len(cpu.runs) == 36 and {r.data.name for r in cpu.runs} == {"cifar10"}
    t1 = {r.run_id for r in load_suite(ROOT / "suites" / "table1-cpu.yaml").runs}
    shared = [r for r in cpu.runs if r.run_id in t1]
    assert len(shared) == 8 and {(r.method, r.federation.aggregator) for r in shared} == {
        ("simclr", "fedavg"), ("byol", "fedavg")}
    # every new row differs from a shared baseline only in method / aggregator
    ref = shared[0].identity()
    for r in cpu.runs:
        d = r.identity()
        for key in ("data", "model", "optim", "eval", "perf"):
            assert d[key] == ref[key], key
    gpu = load_suite(ROOT / "suites" / "beyond.yaml")
    assert {(r.method, r.federation.aggregator) for r in gpu.runs} == rows and len(gpu.runs) == 36
    t1g = {r.run_id for r in load_suite(ROOT / "suites" / "table1.yaml").runs}
    assert sum(r.run_id in t1g for r in gpu.runs) == 12

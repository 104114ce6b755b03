"""The SSL baselines (FedMoCo, FedBYOL, FedU, FedProtoCL): per-step contracts, their persistent state, the
FedX wrapper around each, and a tiny 2-client 2-round federated run per method ± FedX."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedx_bench.config import RunConfig, run_config_from_dict
from fedx_bench.errors import ConfigError
from fedx_bench.federated import FederatedTrainer
from fedx_bench.losses import proto_nce
from fedx_bench.methods import FedX
from fedx_bench.methods.byol import BYOL
from fedx_bench.methods.fedu import FedU, conv_weights
from fedx_bench.methods.moco import MoCo
from fedx_bench.methods.protocl import (
    ProtoCL,
    Prototypes,
    nearest_prototype,
    pcl_concentration,
    spherical_kmeans,
)
from fedx_bench.models import CNN4
from fedx_bench.registry import METHODS
from fedx_bench.runner import build_method

METHOD_NAMES = ["moco", "byol", "fedu", "protocl"]
SMALL_ARGS = {
    "moco": {"queue_size": 32},
    "byol": {},
    "fedu": {},
    "protocl": {"queue_size": 32, "num_clusters": [2, 3]},
}
B, PROJ = 6, 8
X = torch.randn(B, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors here are tiny: one intra-op thread avoids oversubscribing a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _views():
    g = torch.Generator().manual_seed(1)
    return X, X + 0.1 * torch.randn(X.shape, generator=g), torch.randn(X.shape, generator=g)


def _cfg(method: str, fedx: bool | str = False, args: dict | None = None, **kw) -> RunConfig:
    d = {
        "method": method,
        "method_args": SMALL_ARGS[method] if args is None else args,
        "model": {"backbone": "cnn4", "width": 4, "proj_hidden": 16, "proj_dim": PROJ},
        "dataset": "synthetic",
        "fedx": fedx,
    }
    d.update(kw)
    return run_config_from_dict(d)


def _build(method: str, fedx: bool | str = False, args: dict | None = None):
    return build_method(_cfg(method, fedx, args), 3)


def _direct(cls, **args):
    torch.manual_seed(0)
    return cls(CNN4(in_channels=3, width=4), cls.parse_args(args), proj_hidden=16, proj_dim=PROJ)


def _frozen_params(m):
    if isinstance(m, MoCo):
        return list(m.key_encoder.parameters()) + list(m.key_projector.parameters())
    return list(m.target_encoder.parameters()) + list(m.target_projector.parameters())


def _images(n: int, seed: int) -> torch.Tensor:
    """Random uint8 images (N, H, W, C), as the federated loop holds them."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 16, 16, 3), dtype=torch.uint8, generator=g)


def _transform(x):
    return x.permute(0, 3, 1, 2).float() / 255


# --------------------------------------------------------------------------- registry and arguments


def test_registered_with_paper_names_and_defaults():
    displays = {n: METHODS.meta(n)["display"] for n in METHOD_NAMES}
    assert displays == {"moco": "FedMoCo", "byol": "FedBYOL", "fedu": "FedU", "protocl": "FedProtoCL"}
    assert MoCo.parse_args({}).temperature == 0.2 and MoCo.parse_args({}).momentum == 0.99
    assert MoCo.parse_args({}).queue_size == 4096 and MoCo.parse_args({}).reset_key_encoder
    assert BYOL.parse_args({}).ema == 0.99 and FedU.parse_args({}).dapu_threshold == 0.4
    a = ProtoCL.parse_args({})
    assert a.num_clusters == [10, 20] and a.kmeans_iters == 10 and a.proto_weight == 1.0


@pytest.mark.parametrize(
    "method,args",
    [
        ("moco", {"queue_size": 0}),
        ("moco", {"momentum": 1.5}),
        ("moco", {"queu_size": 8}),
        ("byol", {"pred_hidden": "wide"}),
        ("byol", {"ema": -0.1}),
        ("fedu", {"dapu_threshold": -1}),
        ("protocl", {"num_clusters": []}),
        ("protocl", {"num_clusters": [0, 3]}),
        ("protocl", {"num_clusters": "10"}),
        ("protocl", {"kmeans_iters": 0}),
    ],
)
def test_bad_method_args_are_config_errors(method, args):
    with pytest.raises(ConfigError):
        _cfg(method, args=args)


def test_byol_head_sizes_follow_model_config_unless_pred_hidden_given():
    m = _direct(BYOL)
    assert m.predictor[0].out_features == 16 and isinstance(m.projector[1], torch.nn.BatchNorm1d)
    assert _direct(BYOL, pred_hidden=32).predictor[0].out_features == 32


# --------------------------------------------------------------------------- one step


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("with_random_batch", [False, True])
def test_step_shapes_finite_loss_and_gradients(method, with_random_batch):
    m = _build(method)
    m.on_round_start(1, None)
    x1, x2, xr = _views()
    out = m.training_step(x1, x2, xr if with_random_batch else None)
    assert out.z1.shape == (B, PROJ) and out.z2.shape == (B, PROJ)
    assert (out.zr is not None and out.zr.shape == (B, PROJ)) if with_random_batch else out.zr is None
    assert torch.isfinite(out.loss) and out.loss.ndim == 0
    assert "loss_local_contrastive" in out.logs
    assert all(v.ndim == 0 and not v.requires_grad for v in out.logs.values())
    out.loss.backward()
    frozen = _frozen_params(m)
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)
    trainable = m.trainable_parameters()
    assert not {id(p) for p in frozen} & {id(p) for p in trainable}
    assert all(p.grad is not None for p in trainable)
    if isinstance(m, BYOL):
        assert all(p.grad is not None for p in m.predictor.parameters())


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_fedx_wrapped_step_has_the_four_fedx_terms(method):
    m = _build(method, fedx=True)
    assert isinstance(m, FedX)
    m.on_round_start(1, None)
    x1, x2, xr = _views()
    # FedX's teacher is the round-start online/query network, never the EMA target or key network
    with torch.no_grad():
        expect = m.base.student_network().eval()(x2)
        assert torch.allclose(m._teacher[0](x2), expect)
    m.train()
    imgs = _images(12, seed=3)
    m.prepare_local_training(imgs, _transform)
    out = m.training_step(x1, x2, xr)
    keys = {
        "loss_local_contrastive",
        "loss_local_relational",
        "loss_global_contrastive",
        "loss_global_relational",
    }
    assert keys <= set(out.logs) and torch.isfinite(out.loss)
    total = sum(out.logs[k] for k in keys)
    assert torch.allclose(out.logs["loss"], total)
    out.loss.backward()
    assert all(p.grad is None for p in _frozen_params(m.base))
    assert all(p.grad is not None for p in m.head.parameters())
    if method == "protocl":
        assert float(out.logs["term_proto"]) > 0


# --------------------------------------------------------------------------- MoCo


def test_moco_loss_is_mean_of_both_directions():
    from fedx_bench.losses import info_nce_queue

    m = _direct(MoCo, queue_size=16)
    x1, x2, _ = _views()
    out = m.training_step(x1, x2)
    with torch.no_grad():
        q1, q2 = m.project(torch.cat([x1, x2])).split(B)
        k1, k2 = m.key_project(torch.cat([x1, x2])).split(B)
        expected = 0.5 * (info_nce_queue(q1, k2, m.queue, 0.2) + info_nce_queue(q2, k1, m.queue, 0.2))
    assert torch.allclose(out.loss, expected, atol=1e-6)


def test_moco_queue_is_fifo_with_wraparound_and_fixed_size():
    m = _direct(MoCo, queue_size=10)
    assert m.queue.shape == (10, PROJ) and torch.allclose(m.queue.norm(dim=1), torch.ones(10))
    keys = F.normalize(torch.randn(14, PROJ, generator=torch.Generator().manual_seed(5)), dim=1)
    m.enqueue(keys[:4])
    assert int(m.queue_ptr) == 4 and torch.allclose(m.queue[:4], keys[:4])
    m.enqueue(keys[4:8])
    assert int(m.queue_ptr) == 8 and torch.allclose(m.queue[4:8], keys[4:8])
    m.enqueue(keys[8:12])  # two slots left before the end: wraps to the front
    assert int(m.queue_ptr) == 2 and m.queue.shape == (10, PROJ)
    assert torch.allclose(m.queue[8:10], keys[8:10]) and torch.allclose(m.queue[0:2], keys[10:12])
    assert torch.allclose(m.queue[2:8], keys[2:8])  # untouched older keys
    # more keys than slots: only the newest 10 survive, in FIFO positions
    m.enqueue(keys)  # writes of 14 keys from ptr 2 → last key at (2 + 13) % 10 = 5
    assert int(m.queue_ptr) == (2 + 14) % 10
    for i in range(4, 14):
        assert torch.allclose(m.queue[(2 + i) % 10], keys[i])
    # unnormalised keys are stored normalised
    m.enqueue(3 * keys[:1])
    assert torch.allclose(m.queue[6], keys[0])


def test_moco_after_step_momentum_update_and_enqueues_both_views():
    m = _direct(MoCo, queue_size=32, momentum=0.9)
    x1, x2, _ = _views()
    out = m.training_step(x1, x2)
    with torch.no_grad():
        expected_keys = F.normalize(m.key_project(torch.cat([x1, x2])), dim=1)
    out.loss.backward()
    torch.optim.SGD(m.trainable_parameters(), lr=0.5).step()
    key_before = [p.clone() for p in m.key_encoder.parameters()]
    m.after_optimizer_step()
    for kb, ka, q in zip(key_before, m.key_encoder.parameters(), m.encoder.parameters()):
        assert torch.allclose(ka, 0.9 * kb + 0.1 * q, rtol=0, atol=1e-6)
    assert int(m.queue_ptr) == 2 * B
    assert torch.allclose(m.queue[: 2 * B], expected_keys, atol=1e-6)
    m.after_optimizer_step()  # nothing pending: no second push
    assert int(m.queue_ptr) == 2 * B


def test_moco_round_start_resets_key_network_and_restores_queue():
    m = _direct(MoCo, queue_size=16)
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(0.3)
    m.enqueue(torch.randn(5, PROJ))
    state = m.client_state()
    assert set(state["tensors"]) == {"queue", "queue_ptr"}
    assert not any(k.startswith("queue") for k in m.shared_state())
    assert any(k.startswith("key_encoder.") for k in m.shared_state())  # the server averages the key network
    saved_queue = state["tensors"]["queue"].clone()
    m.enqueue(torch.randn(7, PROJ))  # another client's round changes the shared local model
    m.on_round_start(2, state)
    assert torch.equal(m.queue, saved_queue) and int(m.queue_ptr) == 5
    for kq, vq in m.encoder.state_dict().items():
        assert torch.equal(m.key_encoder.state_dict()[kq], vq)
    for kq, vq in m.projector.state_dict().items():
        assert torch.equal(m.key_projector.state_dict()[kq], vq)
    # without the reset the key network keeps its own weights
    n = _direct(MoCo, queue_size=16, reset_key_encoder=False)
    with torch.no_grad():
        for p in n.encoder.parameters():
            p.add_(0.3)
    n.on_round_start(1, None)
    assert not torch.equal(next(n.key_encoder.parameters()), next(n.encoder.parameters()))


def test_moco_first_participation_gets_a_fresh_queue_not_the_previous_clients():
    m = _direct(MoCo, queue_size=16)
    m.enqueue(torch.ones(16, PROJ))  # client A's keys
    torch.manual_seed(123)
    m.on_round_start(1, None)  # client B, first time
    assert int(m.queue_ptr) == 0 and torch.allclose(m.queue.norm(dim=1), torch.ones(16))
    assert not torch.allclose(m.queue, F.normalize(torch.ones(16, PROJ), dim=1))
    q1 = m.queue.clone()
    torch.manual_seed(123)
    m.on_round_start(1, None)
    assert torch.equal(m.queue, q1)  # from the seeded global RNG: deterministic


def test_fedx_wrapper_keeps_queue_local():
    m = _build("moco", fedx=True)
    assert m.local_prefixes == ("base.queue",)
    assert not any(k.startswith("base.queue") for k in m.shared_state())
    assert set(m.client_state()["tensors"]) == {"queue", "queue_ptr"}


# --------------------------------------------------------------------------- BYOL / FedU


def test_byol_ema_update_is_exact():
    m = _direct(BYOL, ema=0.9)
    m.on_round_start(1, None)
    x1, x2, _ = _views()
    m.training_step(x1, x2).loss.backward()
    torch.optim.SGD(m.trainable_parameters(), lr=0.5).step()
    tgt = copy.deepcopy(m.target_encoder.state_dict()) | {
        "p." + k: v for k, v in copy.deepcopy(m.target_projector.state_dict()).items()
    }
    m.after_optimizer_step()
    for net_t, net_o, prefix in ((m.target_encoder, m.encoder, ""), (m.target_projector, m.projector, "p.")):
        onl = dict(net_o.named_parameters())
        for name, p in net_t.named_parameters():
            manual = 0.9 * tgt[prefix + name] + (1 - 0.9) * onl[name]
            assert torch.allclose(p, manual, rtol=0, atol=1e-6), name  # float32 rounding only
            assert not torch.equal(p, onl[name])
        onl_b = dict(net_o.named_buffers())
        for name, b in net_t.named_buffers():
            assert torch.equal(b, onl_b[name]), name


def test_byol_target_local_and_first_participation_inits_from_online():
    m = _direct(BYOL)
    assert m.local_prefixes == ("target_",)
    assert not any(k.startswith("target_") for k in m.shared_state())
    assert any(k.startswith("predictor.") for k in m.shared_state())
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(0.2)  # "the global online network just received"
    m.on_round_start(1, None)
    for k, v in m.encoder.state_dict().items():
        assert torch.equal(m.target_encoder.state_dict()[k], v)
    state = m.client_state()
    assert state["tensors"] and all(k.startswith("target_") for k in state["tensors"])
    saved = {k: v.clone() for k, v in state["tensors"].items()}
    with torch.no_grad():
        for p in list(m.encoder.parameters()) + list(m.target_encoder.parameters()):
            p.add_(1.0)
    m.on_round_start(2, state)  # returning client: its own target, not the new online network
    for k, v in m.state_dict().items():
        if k in saved:
            assert torch.equal(v, saved[k])


def _set_conv_divergence(m: FedU, d: float) -> None:
    with torch.no_grad():
        for i, w in enumerate(conv_weights(m.encoder)):
            direction = torch.randn(w.shape, generator=torch.Generator().manual_seed(i))
            w.add_(d * direction / direction.norm())


@pytest.mark.parametrize("d,choice", [(0.39, "global"), (0.41, "local")])
def test_fedu_dapu_picks_global_or_local_predictor(d, choice):
    m = _direct(FedU)  # μ = 0.4
    m.on_round_start(1, None)
    assert m.last_dapu_choice == "global" and m.last_dapu_divergence is None
    # "local training": the encoder moves by exactly d per conv tensor and the predictor changes
    _set_conv_divergence(m, d)
    with torch.no_grad():
        for p in m.predictor.parameters():
            p.fill_(0.5)
        m.predictor[1].running_mean.fill_(0.7)
    local_pred = copy.deepcopy(m.predictor.state_dict())
    state = m.client_state()
    assert isinstance(state["dapu_divergence"], float)
    assert state["dapu_divergence"] == pytest.approx(d, abs=1e-5)
    assert set(state) == {"tensors", "dapu_divergence", "dapu_predictor"}
    # the next round's global model arrives with a different predictor
    glob = {k: v.clone() for k, v in m.shared_state().items()}
    for k in glob:
        if k.startswith("predictor.") and glob[k].is_floating_point():
            glob[k].fill_(-0.25)
    m.load_shared_state(glob)
    m.on_round_start(2, state)
    assert m.last_dapu_choice == choice and m.last_dapu_divergence == pytest.approx(d, abs=1e-5)
    for k, v in m.predictor.state_dict().items():
        expected = local_pred[k] if choice == "local" else glob["predictor." + k]
        assert torch.equal(v, expected), k
    # the snapshot is the new round's global encoder: no movement yet
    assert m.client_state()["dapu_divergence"] == 0.0


def test_fedu_state_survives_torch_save(tmp_path):
    m = _direct(FedU)
    m.on_round_start(1, None)
    _set_conv_divergence(m, 0.1)
    torch.save(m.client_state(), tmp_path / "s.pt")
    back = torch.load(tmp_path / "s.pt")
    assert back["dapu_divergence"] == pytest.approx(0.1, abs=1e-5) and "tensors" in back


# --------------------------------------------------------------------------- ProtoCL


def _three_clusters(n_per: int = 10, noise: float = 0.05, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(PROJ)[:3]
    labels = torch.arange(3).repeat_interleave(n_per)
    scale = torch.tensor([noise, noise, 4 * noise])[labels, None]  # cluster 2 is looser
    x = F.normalize(centers[labels] + scale * torch.randn(3 * n_per, PROJ, generator=g), dim=1)
    return x, labels


def test_proto_nce_matches_loop():
    g = torch.Generator().manual_seed(7)
    q = torch.randn(5, 4, generator=g)
    c = F.normalize(torch.randn(3, 4, generator=g), dim=1)
    phi = torch.tensor([0.1, 0.2, 0.3])
    a = torch.tensor([0, 2, 1, 1, 0])
    total = 0.0
    for i in range(5):
        qi = q[i] / q[i].norm()
        logits = [float(qi @ c[j]) / float(phi[j]) for j in range(3)]
        total += -logits[a[i]] + math.log(sum(math.exp(v) for v in logits))
    assert float(proto_nce(q, c, phi, a)) == pytest.approx(total / 5, rel=1e-5)


def test_kmeans_finds_separable_clusters_and_pcl_concentration():
    x, labels = _three_clusters()
    torch.manual_seed(0)
    centroids, assign = spherical_kmeans(x, 3, 10)
    assert torch.allclose(centroids.norm(dim=1), torch.ones(3))
    mapping = {}
    for lab in range(3):
        ids = assign[labels == lab].unique()
        assert ids.numel() == 1  # pure clusters
        mapping[lab] = int(ids)
    assert len(set(mapping.values())) == 3
    phi = pcl_concentration(x, assign, 3, 0.2)
    assert phi.mean() == pytest.approx(0.2, rel=1e-5) and bool((phi > 0).all())
    assert phi[mapping[2]] > phi[mapping[0]]  # the looser cluster is less concentrated
    # the prototype term is lower for the correct assignment than for a wrong one
    right = proto_nce(x, centroids, phi, assign)
    wrong = proto_nce(x, centroids, phi, (assign + 1) % 3)
    assert right < wrong
    # on-the-fly assignment = nearest prototype
    assert torch.equal(nearest_prototype(3 * x, centroids), assign)


def test_pcl_concentration_singletons_and_degenerate():
    x = F.normalize(torch.randn(4, PROJ, generator=torch.Generator().manual_seed(2)), dim=1)
    phi = pcl_concentration(x, torch.tensor([0, 0, 1, 2]), 3, 0.1)
    assert torch.allclose(phi, torch.full((3,), 0.1))  # singletons take the max, then mean = τ
    phi = pcl_concentration(x, torch.arange(4), 4, 0.1)  # every cluster a singleton: fall back to τ
    assert torch.allclose(phi, torch.full((4,), 0.1))


def test_protocl_prepare_clusters_key_features_and_adds_the_proto_term():
    m = _direct(ProtoCL, queue_size=16, num_clusters=[3, 50])
    imgs = _images(15, seed=4)
    x1, x2, _ = _views()
    m.on_round_start(1, None)
    out0 = m.training_step(x1, x2)  # before k-means: InfoNCE only
    assert float(out0.logs["term_proto"]) == 0 and torch.equal(out0.loss, out0.logs["term_infonce"])
    m.train()
    m.prepare_local_training(imgs, _transform)
    assert m.training and m.key_encoder.training  # feature pass in eval mode, mode restored
    assert [p.centroids.shape for p in m.prototypes] == [(3, PROJ), (15, PROJ)]  # 50 capped at 15 images
    for p in m.prototypes:
        assert p.concentration.mean() == pytest.approx(0.2, rel=1e-5)
    assert not any("proto" in k for k in m.state_dict())  # prototypes are not state
    out = m.training_step(x1, x2)
    assert float(out.logs["term_proto"]) > 0
    assert torch.allclose(out.loss, out.logs["term_infonce"] + out.logs["term_proto"])
    assert torch.allclose(out.logs["loss_local_contrastive"], out.loss.detach())
    # the proto term is PCL's ProtoNCE with each view's key-nearest prototype
    with torch.no_grad():
        q1, q2 = m.project(torch.cat([x1, x2])).split(B)
        k1, k2 = m.key_project(torch.cat([x1, x2])).split(B)
        terms = [
            0.5
            * (
                proto_nce(q1, p.centroids, p.concentration, nearest_prototype(k1, p.centroids))
                + proto_nce(q2, p.centroids, p.concentration, nearest_prototype(k2, p.centroids))
            )
            for p in m.prototypes
        ]
    assert torch.allclose(out.logs["term_proto"], torch.stack(terms).mean(), atol=1e-6)
    # a new round (or the next client) never reuses these prototypes
    m.on_round_start(2, m.client_state())
    assert m.prototypes == []


def test_protocl_proto_term_prefers_correct_clusters_on_constructed_prototypes():
    m = _direct(ProtoCL, queue_size=16)
    x, labels = _three_clusters(n_per=2)
    centers = F.normalize(torch.eye(PROJ)[:3], dim=1)
    m.prototypes = [Prototypes(centers, torch.full((3,), 0.2))]
    right = m.proto_term(x, x, x, x)  # keys next to the queries: assignment = own cluster
    wrong = m.proto_term(x, x, x.roll(1, 0), x.roll(1, 0))
    assert torch.equal(nearest_prototype(x, centers), labels)
    assert right < wrong


def test_protocl_warmup_rounds_skip_clustering():
    m = _direct(ProtoCL, queue_size=16, warmup_rounds=1)
    imgs = _images(10, seed=0)
    m.on_round_start(1, None)
    m.prepare_local_training(imgs, _transform)
    assert m.prototypes == []
    m.on_round_start(2, None)
    m.prepare_local_training(imgs, _transform)
    assert len(m.prototypes) == 2


# --------------------------------------------------------------------------- end to end


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    x = _transform(x)
    return x + 0.05 * torch.randn(x.shape, generator=g, device=x.device)


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("fedx", [False, True])
def test_two_clients_two_rounds_end_to_end(method, fedx):
    cfg = _cfg(
        method,
        fedx,
        federation={"clients": 2, "rounds": 2, "local_epochs": 1},
        optim={"batch_size": 8, "lr": 0.05},
    )
    model = build_method(cfg, 3)
    images = _images(40, seed=9)
    parts = [np.arange(0, 20), np.arange(20, 40)]
    trainer = FederatedTrainer(cfg, model, images, parts, _augment, torch.device("cpu"), transform=_transform)
    before = {k: v.clone() for k, v in trainer.global_model.shared_state().items()}
    for _ in range(2):
        res = trainer.run_round()
        assert res.steps == 4 and res.losses
        assert all(math.isfinite(v) for v in res.losses.values()), res.losses
        if fedx:
            assert "loss_global_relational" in res.losses
        if method == "protocl":
            assert res.losses["term_proto"] > 0
    after = trainer.global_model.shared_state()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert set(trainer.client_states) == {0, 1}
    s0 = trainer.client_states[0]
    tensors = set(s0["tensors"])
    if method in ("moco", "protocl"):
        assert tensors == {"queue", "queue_ptr"}
    else:
        assert tensors and all(k.startswith("target_") for k in tensors)
    if method == "fedu":
        assert math.isfinite(s0["dapu_divergence"]) and s0["dapu_divergence"] > 0
    # the two clients' local state differs (no leak from one client to the next)
    t0, t1 = s0["tensors"], trainer.client_states[1]["tensors"]
    assert any(not torch.equal(t0[k], t1[k]) for k in t0)


@pytest.mark.parametrize("fedx", [False, True])
@pytest.mark.parametrize("mu,expected_local", [(0.0, 1.0), (1e9, 0.0)])
def test_fedu_round_stats_report_dapu_choices(mu, expected_local, fedx):
    """The round record says which predictor the clients used: with μ = 0 every returning client keeps its
    local one (d ≥ 0), with a huge μ none does; round 1 always uses the global predictor."""
    cfg = _cfg("fedu", fedx, {"dapu_threshold": mu},
               federation={"clients": 2, "rounds": 2, "local_epochs": 1}, optim={"batch_size": 8, "lr": 0.05})
    images = _images(40, seed=9)
    parts = [np.arange(0, 20), np.arange(20, 40)]
    trainer = FederatedTrainer(cfg, build_method(cfg, 3), images, parts, _augment, torch.device("cpu"),
                               transform=_transform)
    r1, r2 = trainer.run_round(), trainer.run_round()
    assert r1.extra["method_stats"]["dapu_local_predictor"] == 0.0
    assert r2.extra["method_stats"]["dapu_local_predictor"] == expected_local
    assert r2.extra["method_stats"]["dapu_divergence"] > 0
    assert r2.extra["method_stats"]["dapu_divergence"] == pytest.approx(
        sum(trainer.client_states[k]["dapu_divergence"] for k in (0, 1)) / 2)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_resume_from_round_checkpoint_repeats_exactly(method):
    """All persistent per-client state (queue, target, DAPU) lives in client_state: a fresh trainer loaded
    from the round-1 checkpoint reproduces round 2 bit for bit."""
    cfg = _cfg(method, federation={"clients": 2, "rounds": 2, "local_epochs": 1}, optim={"batch_size": 8})
    images = _images(32, seed=11)
    parts = [np.arange(0, 16), np.arange(16, 32)]

    def trainer():
        return FederatedTrainer(
            cfg, build_method(cfg, 3), images, parts, _augment, torch.device("cpu"), transform=_transform
        )

    a = trainer()
    a.run_round()
    ckpt = copy.deepcopy(a.state_dict())
    a.run_round()
    b = trainer()
    b.load_state_dict(ckpt)
    b.run_round()
    for k, v in a.global_model.state_dict().items():
        assert torch.equal(v, b.global_model.state_dict()[k]), k

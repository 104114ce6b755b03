"""Per-method dummy-batch tests and the FedX add-on's rules (teacher frozen, terms per variant)."""

import copy

import pytest
import torch

from fedx_bench.config import FEDX_VARIANTS, RunConfig, run_config_from_dict
from fedx_bench.federated import fedavg
from fedx_bench.methods import FedX
from fedx_bench.runner import build_method

X = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _cfg(**kw) -> RunConfig:
    d = {"model": {"backbone": "cnn4", "width": 4}, "dataset": "synthetic"}
    d.update(kw)
    return run_config_from_dict(d)


def _views():
    g = torch.Generator().manual_seed(1)
    return X, X + 0.1 * torch.randn(X.shape, generator=g), torch.randn(X.shape, generator=g)


def test_simclr_step_shapes_finite_and_grads():
    m = build_method(_cfg(), 3)
    x1, x2, xr = _views()
    out = m.training_step(x1, x2, None)
    assert out.z1.shape == (6, 256) and out.zr is None
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in m.trainable_parameters())


def test_same_seed_same_random_init_encoder_with_and_without_fedx():
    a = build_method(_cfg(), 3)
    b = build_method(_cfg(fedx=True), 3)
    for (ka, va), (kb, vb) in zip(a.encoder.state_dict().items(), b.encoder.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("variant", list(FEDX_VARIANTS))
def test_fedx_variants_terms_and_frozen_teacher(variant):
    m = build_method(_cfg(fedx=variant), 3)
    assert isinstance(m, FedX)
    terms = FEDX_VARIANTS[variant]
    m.on_round_start(1, None)
    teacher = m._teacher[0] if m._teacher else None
    before = copy.deepcopy(teacher.state_dict()) if teacher is not None else None
    x1, x2, xr = _views()
    out = m.training_step(x1, x2, xr)
    assert torch.isfinite(out.loss)
    expected = {"loss_local_contrastive"}
    if terms["local_relational"]:
        expected.add("loss_local_relational")
    if terms["global_contrastive"]:
        expected.add("loss_global_contrastive")
    if terms["global_relational"]:
        expected.add("loss_global_relational")
    assert set(out.logs) - {"loss"} == expected
    total = sum(v for k, v in out.logs.items() if k != "loss")
    assert torch.allclose(out.logs["loss"], total)
    out.loss.backward()
    if teacher is not None:
        assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
        opt = torch.optim.SGD(m.trainable_parameters(), lr=0.1)
        opt.step()
        for k, v in teacher.state_dict().items():
            assert torch.equal(v, before[k])  # teacher never moves during the round
    if m.head is not None:
        assert all(p.grad is not None for p in m.head.parameters())
    # the teacher is not part of the aggregated state
    assert not any("teacher" in k for k in m.shared_state())


def test_fedx_teacher_is_round_start_global():
    m = build_method(_cfg(fedx=True), 3)
    m.on_round_start(1, None)
    x1, x2, xr = _views()
    with torch.no_grad():
        expected = m.student_network().eval()(x2)
        got = m._teacher[0](x2)
    assert torch.allclose(expected, got)


def test_fedavg_weights_normalised_over_participants():
    s1 = {"w": torch.tensor([1.0, 1.0]), "n": torch.tensor(10)}
    s2 = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(20)}
    out = fedavg([s1, s2], [1, 3])
    assert torch.allclose(out["w"], torch.tensor([2.5, 4.0]))
    assert out["n"].dtype == torch.int64 and int(out["n"]) == 18  # 17.5 rounds to even
    # a single participant is returned unchanged, whatever its absolute weight
    assert torch.equal(fedavg([s2], [7])["w"], s2["w"])

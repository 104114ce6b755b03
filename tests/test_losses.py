"""Loss values on fixed small inputs against independent (loop/NumPy) computations of spec §2."""

import math

import numpy as np
import torch

from fedx_bench.losses import byol_loss, info_nce_queue, nt_xent, relational_kl


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _nt_xent_loop(u, v, t):
    w = _unit(np.concatenate([u, v]))
    n = len(w)
    b = n // 2
    total = 0.0
    for a in range(n):
        pos = (a + b) % n
        denom = sum(math.exp(w[a] @ w[c] / t) for c in range(n) if c != a)
        total += -math.log(math.exp(w[a] @ w[pos] / t) / denom)
    return total / n


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _relational_numpy(u, v, a, t, tt):
    su, sv = _unit(u) @ _unit(a).T, _unit(v) @ _unit(a).T
    m = 0.5 * (_softmax(su / tt) + _softmax(sv / tt))
    pu, pv = _softmax(su / t), _softmax(sv / t)
    kl_u = np.sum(m * (np.log(m) - np.log(pu))) / len(u)
    kl_v = np.sum(m * (np.log(m) - np.log(pv))) / len(v)
    return 0.5 * (kl_u + kl_v)


rng = np.random.default_rng(0)
U = rng.normal(size=(4, 5))
V = rng.normal(size=(4, 5))
A = rng.normal(size=(3, 5))


def test_nt_xent_matches_loop():
    for t in (0.1, 0.5, 1.0):
        got = nt_xent(torch.tensor(U), torch.tensor(V), t).item()
        assert abs(got - _nt_xent_loop(U, V, t)) < 1e-9


def test_nt_xent_scale_invariant_and_known_limit():
    # identical views with orthogonal rows: positives at similarity 1, negatives at 0 (except the twin)
    e = np.eye(3)
    got = nt_xent(torch.tensor(e) * 7.0, torch.tensor(e), 1.0).item()
    expected = -math.log(math.e / (math.e + 4 * 1.0))  # denominator: positive + 4 orthogonal negatives
    assert abs(got - expected) < 1e-9


def test_relational_kl_matches_numpy_and_temperatures():
    for t, tt in ((0.1, 0.1), (0.1, 0.01), (0.5, 0.2)):
        got = relational_kl(torch.tensor(U), torch.tensor(V), torch.tensor(A), t, tt).item()
        assert abs(got - _relational_numpy(U, V, A, t, tt)) < 1e-9


def test_relational_kl_has_no_stop_gradient_on_mixture():
    u = torch.tensor(U, requires_grad=True)
    v = torch.tensor(V, requires_grad=True)
    a = torch.tensor(A, requires_grad=True)
    relational_kl(u, v, a, 0.1, 0.05).backward()
    assert u.grad.abs().sum() > 0 and v.grad.abs().sum() > 0 and a.grad.abs().sum() > 0
    # with u == v and equal temperatures, P == M, so the loss is exactly zero
    z = relational_kl(torch.tensor(U), torch.tensor(U), torch.tensor(A), 0.2, 0.2).item()
    assert abs(z) < 1e-12


def test_byol_and_infonce():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert abs(byol_loss(p, p).item()) < 1e-7
    assert abs(byol_loss(p, -p).item() - 4.0) < 1e-6
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    got = info_nce_queue(q, k, queue, 1.0).item()
    expected = -math.log(math.e / (math.e + 1.0 + math.exp(-1.0)))
    assert abs(got - expected) < 1e-6

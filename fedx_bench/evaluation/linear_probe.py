"""Linear probe on frozen features: protocol ``linear_probe@fedx-v1`` (spec §4.1, ``utils.test_linear_fedX``).

A fresh ``Linear(d, classes)`` with bias is trained with Adam (lr 1e-3, weight decay 1e-6) and
cross-entropy for 100 epochs of shuffled batches of 64 (last batch kept, no feature normalisation),
then scored top-1/top-5 on the test features.

Three implementations share one seeded random stream, so with the same seed they see the same initial
weights and the same per-epoch permutations:

* :func:`linear_probe_plain` -- the reference's shape: ``TensorDataset`` + shuffling ``DataLoader``,
  autograd, ``torch.optim.Adam``. Slow (per-sample collation) but obviously right.
* ``linear_probe(..., engine="autograd")`` -- the same maths with tensors kept on the device and
  minibatches taken by slicing one permuted copy per epoch; bit-identical to the plain version.
* ``linear_probe(..., engine="analytic")`` (default) -- the softmax-regression gradient in closed form
  and Adam written out on one fused ``[W | b]`` matrix: about a dozen tensor ops per step instead of
  autograd + two-parameter Adam. Equal to the others up to float rounding.

The reference repeats ~78k tiny Adam steps per evaluation, every round; per-step overhead is the whole
cost, which is what the fast paths remove.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .protocol import EvalContext, RoundMetricProtocol, register_protocol

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam defaults, used by the reference
ENGINES = ("analytic", "autograd")

_Inputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, torch.device]


def _prepare(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int | None,
    device: str | torch.device | None,
) -> _Inputs:
    """Validate shapes, move everything to one device as float32/int64, and resolve ``num_classes``."""
    if train_feats.dim() != 2 or test_feats.dim() != 2:
        raise ValueError(
            f"features must be 2-D (N, d); got {tuple(train_feats.shape)} and {tuple(test_feats.shape)}"
        )
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"train/test feature dims differ: {train_feats.shape[1]} vs {test_feats.shape[1]}")
    if train_labels.shape != (train_feats.shape[0],) or test_labels.shape != (test_feats.shape[0],):
        raise ValueError("labels must be 1-D with one entry per feature row")
    if train_feats.shape[0] == 0 or test_feats.shape[0] == 0:
        raise ValueError("linear probe needs at least one train and one test sample")
    dev = torch.device(device) if device is not None else train_feats.device
    xtr = train_feats.detach().to(dev, torch.float32)
    xte = test_feats.detach().to(dev, torch.float32)
    ytr = train_labels.detach().to(dev, torch.long)
    yte = test_labels.detach().to(dev, torch.long)
    lo = min(int(ytr.min()), int(yte.min()))
    hi = max(int(ytr.max()), int(yte.max()))
    if lo < 0:
        raise ValueError(f"labels must be non-negative class indices, found {lo}")
    if num_classes is None:
        num_classes = hi + 1  # the reference: max label + 1
    elif num_classes <= hi:
        raise ValueError(f"num_classes={num_classes} but labels go up to {hi}")
    return xtr, ytr, xte, yte, num_classes, dev


def _seeded_linear(d: int, num_classes: int, generator: torch.Generator, device: torch.device) -> nn.Linear:
    """``Linear(d, num_classes)`` with nn.Linear's default init, U(+-1/sqrt(d)), drawn from ``generator``.

    Drawing from our own generator (on CPU, so the values do not depend on the device) keeps the global
    RNG untouched and makes every implementation start from the same weights.
    """
    bound = 1.0 / math.sqrt(d)
    layer = nn.Linear(d, num_classes, device="meta").to_empty(device=device)
    with torch.no_grad():
        layer.weight.copy_(torch.empty(num_classes, d).uniform_(-bound, bound, generator=generator))
        layer.bias.copy_(torch.empty(num_classes).uniform_(-bound, bound, generator=generator))
    return layer


def _epoch_permutation(generator: torch.Generator, n: int) -> torch.Tensor:
    """The order in which a ``DataLoader(shuffle=True, generator=generator)`` visits ``n`` samples.

    In this torch (2.x), each ``iter(loader)`` draws a worker base seed from the loader's generator;
    its ``RandomSampler`` then yields ``torch.randperm(n, generator=generator)`` and, once exhausted,
    draws one more (discarded) permutation for its ``num_samples % n == 0`` remainder. We consume the
    stream the same way so that fast and plain probes see identical batches; a test compares against
    a real DataLoader in case a future torch changes this.
    """
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    perm = torch.randperm(n, generator=generator)
    torch.randperm(n, generator=generator)
    return perm


def _topk(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1 and top-5 accuracy in percent; top-k is capped at the number of classes."""
    k = min(5, logits.shape[1])
    hits = logits.topk(k, dim=1).indices.eq(labels[:, None])
    n = labels.shape[0]
    return {
        "top1": 100.0 * hits[:, 0].sum().item() / n,
        "top5": 100.0 * hits.any(dim=1).sum().item() / n,
    }


def _check_hparams(epochs: int, batch_size: int) -> None:
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _train_autograd(
    x: torch.Tensor,
    y: torch.Tensor,
    layer: nn.Linear,
    generator: torch.Generator,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
) -> None:
    """Reference maths (autograd + torch Adam), minibatches by slicing one permuted copy per epoch."""
    n = x.shape[0]
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        perm = _epoch_permutation(generator, n).to(x.device)
        xs, ys = x.index_select(0, perm), y.index_select(0, perm)
        for start in range(0, n, batch_size):
            loss = F.cross_entropy(layer(xs[start : start + batch_size]), ys[start : start + batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


@torch.no_grad()
def _train_analytic(
    x: torch.Tensor,
    y: torch.Tensor,
    layer: nn.Linear,
    num_classes: int,
    generator: torch.Generator,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
) -> None:
    """Same updates as autograd + ``torch.optim.Adam`` (L2 weight decay), written out by hand.

    With features augmented by a constant 1 column, ``[W | b]`` is one (C, d+1) matrix ``theta``.
    The mean cross-entropy gradient is ``(softmax(x theta^T) - onehot)^T x / B`` and Adam's L2 term
    adds ``weight_decay * theta`` (applied to the bias too, as the reference's Adam does); both fold
    into one ``addmm``. Adam's update follows torch's single-tensor formula step by step.
    """
    n = x.shape[0]
    x_aug = torch.cat([x, x.new_ones(n, 1)], dim=1)
    onehot = F.one_hot(y, num_classes).to(x.dtype)
    theta = torch.cat([layer.weight, layer.bias[:, None]], dim=1).contiguous()
    exp_avg = torch.zeros_like(theta)
    exp_avg_sq = torch.zeros_like(theta)
    denom = torch.empty_like(theta)
    step = 0
    for _ in range(epochs):
        perm = _epoch_permutation(generator, n).to(x.device)
        xs, ts = x_aug.index_select(0, perm), onehot.index_select(0, perm)
        for start in range(0, n, batch_size):
            xb, tb = xs[start : start + batch_size], ts[start : start + batch_size]
            probs = torch.softmax(xb @ theta.t(), dim=1).sub_(tb)
            grad = torch.addmm(theta, probs.t(), xb, beta=weight_decay, alpha=1.0 / xb.shape[0])
            step += 1
            exp_avg.lerp_(grad, 1 - _BETA1)
            exp_avg_sq.mul_(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
            bias_correction1 = 1 - _BETA1**step
            bias_correction2_sqrt = math.sqrt(1 - _BETA2**step)
            torch.sqrt(exp_avg_sq, out=denom).div_(bias_correction2_sqrt).add_(_EPS)
            theta.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
    layer.weight.copy_(theta[:, :-1])
    layer.bias.copy_(theta[:, -1])


def linear_probe(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    epochs: int = 100,
    lr: float = 1e-3,
    weight_decay: float = 1e-6,
    batch_size: int = 64,
    seed: int = 0,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    engine: str = "analytic",
) -> dict[str, float]:
    """``linear_probe@fedx-v1`` on precomputed features; returns ``{"top1": %, "top5": %}``.

    Everything stays on ``device`` (default: the device of ``train_feats``); no DataLoader. ``seed``
    fixes the initial weights and the shuffling through a private ``torch.Generator`` (global RNG
    untouched), drawn exactly as :func:`linear_probe_plain` draws them. ``engine`` picks the
    closed-form gradient path (``"analytic"``, fastest) or autograd + ``torch.optim.Adam``
    (``"autograd"``, bit-identical to the plain version); both implement the same protocol.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")
    _check_hparams(epochs, batch_size)
    xtr, ytr, xte, yte, num_classes, dev = _prepare(
        train_feats, train_labels, test_feats, test_labels, num_classes, device
    )
    generator = torch.Generator().manual_seed(seed)
    layer = _seeded_linear(xtr.shape[1], num_classes, generator, dev)
    if engine == "analytic":
        _train_analytic(xtr, ytr, layer, num_classes, generator, epochs, lr, weight_decay, batch_size)
    else:
        _train_autograd(xtr, ytr, layer, generator, epochs, lr, weight_decay, batch_size)
    with torch.no_grad():
        return _topk(layer(xte), yte)


def linear_probe_plain(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    epochs: int = 100,
    lr: float = 1e-3,
    weight_decay: float = 1e-6,
    batch_size: int = 64,
    seed: int = 0,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """The straightforward reference-style probe (``TensorDataset`` + ``DataLoader``), kept as an oracle.

    Same protocol and same random stream as :func:`linear_probe`; use it to check the fast path, not
    in benchmark runs (it is several times slower).
    """
    _check_hparams(epochs, batch_size)
    xtr, ytr, xte, yte, num_classes, dev = _prepare(
        train_feats, train_labels, test_feats, test_labels, num_classes, device
    )
    generator = torch.Generator().manual_seed(seed)
    layer = _seeded_linear(xtr.shape[1], num_classes, generator, dev)
    train_loader = DataLoader(
        TensorDataset(xtr, ytr), batch_size=batch_size, shuffle=True, generator=generator
    )
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    layer.train()
    for _ in range(epochs):
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = criterion(layer(xb), yb)
            loss.backward()
            optimizer.step()
    layer.eval()
    # A loader without a generator would draw its worker base seed from the global RNG.
    test_loader = DataLoader(TensorDataset(xte, yte), batch_size=batch_size, generator=torch.Generator())
    logits = []
    with torch.no_grad():
        for xb, _ in test_loader:
            logits.append(layer(xb))
    return _topk(torch.cat(logits), yte)


class LinearProbe(RoundMetricProtocol):
    """``linear_probe@fedx-v1`` on the global encoder at every evaluated round, trained on the whole (limited)
    training split; the probe's seed is derived from the run seed and the round."""

    name = "linear_probe"
    version = "fedx-v1"
    metrics = ("top1", "top5")
    description = ("Reference linear probe (spec §4.1): fresh Linear(d, classes) on frozen backbone features, "
                   "Adam lr 1e-3 wd 1e-6, batch 64, 100 epochs, top-1/top-5 on the test split.")
    compute = staticmethod(linear_probe)

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        from ..federated import derive_seed  # lazy: the evaluation package loads without the federated loop

        e = ctx.cfg.eval
        tr, ytr, te, yte = ctx.features()
        r = linear_probe(tr, ytr, te, yte, epochs=e.probe_epochs, lr=e.probe_lr, weight_decay=e.probe_weight_decay,
                         batch_size=e.probe_batch_size, seed=derive_seed(ctx.cfg.seed, ctx.round, 7) % (2**31),
                         num_classes=ctx.data.dataset.num_classes, device=ctx.device)
        return {"linear_probe_top1": float(r["top1"]), "linear_probe_top5": float(r["top5"])}


register_protocol(LinearProbe())

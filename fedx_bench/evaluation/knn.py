"""Weighted kNN on frozen features: protocol ``knn@v1`` (benchmark-defined, beyond the paper).

The usual self-supervised monitor: cosine similarity on L2-normalised features, the k most similar
training samples vote for their class with weight ``exp(sim / temperature)``. It needs no training,
so it is a cheap per-round signal next to the 100-epoch linear probe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .protocol import EvalContext, RoundMetricProtocol, register_protocol


@torch.no_grad()
def knn_accuracy(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Top-1 accuracy (percent) of temperature-weighted kNN voting; returns ``{"top1": %}``.

    ``k`` is capped at the number of training samples. Test samples are processed ``chunk_size`` at a
    time so memory stays at ``chunk_size x n_train`` similarities. Weights are computed relative to
    each row's best similarity (``exp((sim - max) / T)``): the vote is scaled by a positive constant,
    so the prediction is unchanged, but small temperatures cannot overflow float32. Runs on the device
    of ``train_feats``.
    """
    if train_feats.dim() != 2 or test_feats.dim() != 2 or train_feats.shape[1] != test_feats.shape[1]:
        shapes = f"{tuple(train_feats.shape)} and {tuple(test_feats.shape)}"
        raise ValueError(f"features must be (N, d) with equal d; got {shapes}")
    if train_labels.shape != (train_feats.shape[0],) or test_labels.shape != (test_feats.shape[0],):
        raise ValueError("labels must be 1-D with one entry per feature row")
    n_train, n_test = train_feats.shape[0], test_feats.shape[0]
    if n_train == 0 or n_test == 0:
        raise ValueError("kNN needs at least one train and one test sample")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    device = train_feats.device
    train = F.normalize(train_feats.to(torch.float32), dim=1)
    test = F.normalize(test_feats.to(device, torch.float32), dim=1)
    ytr = train_labels.to(device, torch.long)
    yte = test_labels.to(device, torch.long)
    hi = max(int(ytr.max()), int(yte.max()))
    if min(int(ytr.min()), int(yte.min())) < 0:
        raise ValueError("labels must be non-negative class indices")
    if num_classes is None:
        num_classes = hi + 1
    elif num_classes <= hi:
        raise ValueError(f"num_classes={num_classes} but labels go up to {hi}")
    k = min(k, n_train)

    correct = 0
    for start in range(0, n_test, chunk_size):
        sims = test[start : start + chunk_size] @ train.t()
        top_sims, top_idx = sims.topk(k, dim=1)  # sorted: column 0 is the row maximum
        weights = ((top_sims - top_sims[:, :1]) / temperature).exp_()
        votes = torch.zeros(sims.shape[0], num_classes, device=device)
        votes.scatter_add_(1, ytr[top_idx], weights)
        correct += int((votes.argmax(dim=1) == yte[start : start + chunk_size]).sum())
    return {"top1": 100.0 * correct / n_test}


class Knn(RoundMetricProtocol):
    """``knn@v1`` on the global encoder at every evaluated round (shares the linear probe's feature pass)."""

    name = "knn"
    version = "v1"
    metrics = ("top1",)
    description = "Weighted kNN monitor on L2-normalised features, k=200, temperature 0.1 (beyond the paper)."
    compute = staticmethod(knn_accuracy)

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        e = ctx.cfg.eval
        tr, ytr, te, yte = ctx.features()
        r = knn_accuracy(tr, ytr, te, yte, k=e.knn_k, temperature=e.knn_temperature,
                         num_classes=ctx.data.dataset.num_classes)
        return {"knn_top1": float(r["top1"])}


register_protocol(Knn())

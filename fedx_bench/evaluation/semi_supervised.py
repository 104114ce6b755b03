"""Semi-supervised fine-tuning: protocol ``semi_supervised@v1`` (benchmark-defined, protocols.md).

The paper only says "add a fully connected layer and fine-tune with a small labelled set"; the FedU
code it builds on never fine-tunes the encoder (spec §4.2). ``semi_supervised@v1`` fixes the missing
details so numbers are comparable across methods:

* labelled set: a class-balanced sample of ``fraction`` of the training split (:func:`balanced_subset`),
  drawn with a seed that is stored next to the result;
* a deep copy of the final global encoder (the run's model is never touched) + ``Linear(d, classes)``;
* all parameters fine-tuned with SGD (momentum 0.9, Nesterov), lr 0.01 backbone / 0.1 head, weight
  decay 5e-4, batch 64, 50 epochs, cosine schedule over all steps, the dataset's training augmentation;
* final-epoch top-1/top-5 on the test split (test transform).

Everything runs on tensors already on the device (minibatches by index slicing, no DataLoader) and all
randomness comes from private generators, so the global RNG (and hence the training run) is untouched.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .features import extract_features
from .linear_probe import _seeded_linear, _topk
from .protocol import FINAL, Protocol, RunContext, register_protocol

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def balanced_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced sample of ``round(fraction * N)`` items, seeded.

    Every class gets ``n // C`` items and ``n % C`` randomly chosen classes one more, so class counts
    differ by at most one. A class with fewer items than its quota gives all it has and the shortfall
    goes, one by one, to the classes with room that hold the fewest picks so far (balance is then kept
    as far as the data allows). Classes are those present in ``labels``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n_total = len(labels)
    n = int(math.floor(fraction * n_total + 0.5))
    if n < 1:
        raise ValueError(f"fraction {fraction} of {n_total} items rounds to an empty labelled set")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    sizes = np.array([len(p) for p in pools])
    quota = np.full(len(classes), n // len(classes), dtype=np.int64)
    quota[rng.choice(len(classes), size=n % len(classes), replace=False)] += 1
    take = np.minimum(quota, sizes)
    short = n - int(take.sum())
    while short > 0:  # only when some class is smaller than its quota
        room = np.flatnonzero(take < sizes)
        c = room[np.argmin(take[room])]
        take[c] += 1
        short -= 1
    return np.sort(np.concatenate([p[:t] for p, t in zip(pools, take)])).astype(np.int64)


def indices_sha256(ix: np.ndarray) -> str:
    """Content hash of an index set (int64 bytes), stored so two results can be checked for the same subset."""
    return hashlib.sha256(np.asarray(ix, dtype=np.int64).tobytes()).hexdigest()


def _feature_dim(encoder: nn.Module, sample: torch.Tensor) -> int:
    """Output width of ``encoder``: its ``out_dim`` if it declares one, else one eval-mode forward."""
    d = getattr(encoder, "out_dim", None)
    if isinstance(d, int):
        return d
    was = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            return int(encoder(sample).flatten(1).shape[1])
    finally:
        encoder.train(was)


def semi_supervised_finetune(
    encoder: nn.Module,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    augment: Augment,
    mean: Sequence[float],
    std: Sequence[float],
    num_classes: int,
    epochs: int = 50,
    lr_backbone: float = 0.01,
    lr_head: float = 0.1,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    batch_size: int = 64,
    freeze_backbone: bool = False,
    seed: int = 0,
    device: str | torch.device = "cpu",
    feature_batch_size: int = 512,
) -> dict[str, float]:
    """Fine-tune a copy of ``encoder`` + a new linear head on the labelled images; test top-1/top-5 (percent).

    ``train_images`` are the labelled uint8 (n, H, W, C) images (already the subset), ``augment`` the
    dataset's training pipeline (uint8 batch, generator) -> normalised float NCHW. Batches are the
    shuffled images in order, the last partial batch kept (a trailing single image is skipped while BN
    trains, since batch statistics of one sample are degenerate). The cosine schedule decays both
    learning rates to 0 over ``epochs * batches`` steps. With ``freeze_backbone`` only the head is trained
    and the backbone stays in eval mode (running BN statistics untouched): a linear probe with augmentation.
    ``encoder`` itself is never modified.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if train_images.dtype != torch.uint8 or train_images.dim() != 4:
        shape = tuple(train_images.shape)
        raise ValueError(f"train_images must be uint8 (n, H, W, C), got {train_images.dtype} {shape}")
    n = int(train_images.shape[0])
    if n == 0 or train_labels.shape != (n,):
        raise ValueError("need at least one labelled image and one label per image")
    device = torch.device(device)
    model = copy.deepcopy(encoder).to(device)
    x_all = train_images.to(device)
    y_all = train_labels.to(device, torch.long)
    mean_t = torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(list(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    probe = x_all[:1].permute(0, 3, 1, 2).float().div(255.0).sub(mean_t).div(std_t)
    d = _feature_dim(model, probe)
    init_gen = torch.Generator().manual_seed(seed)
    head = _seeded_linear(d, num_classes, init_gen, device)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)

    for p in model.parameters():
        p.requires_grad_(not freeze_backbone)
    groups = [{"params": list(head.parameters()), "lr": lr_head}]
    if not freeze_backbone:
        groups.insert(0, {"params": [p for p in model.parameters()], "lr": lr_backbone})
    opt = torch.optim.SGD(groups, lr=lr_head, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
    starts = list(range(0, n, batch_size))
    if not freeze_backbone and n > 1 and n - starts[-1] == 1:
        starts.pop()
    total_steps = max(1, epochs * len(starts))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)

    model.train(not freeze_backbone)
    head.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen, device=device)
        for s in starts:
            bi = perm[s : s + batch_size]
            x = augment(x_all[bi], gen)
            if freeze_backbone:
                with torch.no_grad():
                    h = model(x).flatten(1)
            else:
                h = model(x).flatten(1)
            loss = F.cross_entropy(head(h), y_all[bi])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()

    feats = extract_features(model, test_images, mean, std, feature_batch_size, device)
    with torch.no_grad():
        return _topk(head(feats), test_labels.to(device, torch.long))


def semi_supervised_eval(model: nn.Module, data: Any, cfg: Any, device: torch.device, augment_name: str
                         ) -> dict[str, Any]:
    """``semi_supervised@v1`` of ``model`` (a method; its ``encoder`` is fine-tuned): one fine-tune per labelled
    fraction.

    The labelled subsets come from the whole (train_limit-capped) training split, like the linear
    probe's, and use the recorded seed (``eval.semi_seed``, default the run seed) both for the subset and
    for the fine-tune's shuffles/augmentations; with one seed the 1% subset is contained in the 10% one.
    The augmentation is the run's training pipeline (``data.augment``, resolved per dataset: ``augment_name``).
    """
    from ..data.augment import build_augment

    e = cfg.eval
    ds = data.dataset
    seed = cfg.seed if e.semi_seed is None else e.semi_seed
    augment = build_augment(augment_name, ds.mean, ds.std, ds.train_x.shape[1])
    test_x, test_y = torch.from_numpy(ds.test_x), torch.from_numpy(ds.test_y)
    results: dict[str, Any] = {}
    for frac in e.semi_fractions:
        ix = balanced_subset(ds.train_y, frac, seed)
        r = semi_supervised_finetune(
            model.encoder, torch.from_numpy(ds.train_x[ix]), torch.from_numpy(ds.train_y[ix]), test_x, test_y,
            augment=augment, mean=ds.mean, std=ds.std, num_classes=ds.num_classes, epochs=e.semi_epochs,
            lr_backbone=e.semi_lr_backbone, lr_head=e.semi_lr_head, weight_decay=e.semi_weight_decay,
            momentum=e.semi_momentum, batch_size=e.semi_batch_size, freeze_backbone=e.semi_freeze_backbone,
            seed=seed, device=device, feature_batch_size=e.feature_batch_size,
        )
        results[str(frac)] = {"top1": float(r["top1"]), "top5": float(r["top5"]), "n_labelled": int(len(ix)),
                              "subset_sha256": indices_sha256(ix)}
    return {"protocol": SEMI_SUPERVISED.id, "round": cfg.federation.rounds, "seed": seed, "results": results}


class SemiSupervised(Protocol):
    """``semi_supervised@v1`` once on the final global encoder and, with ``eval.at_init``, on the random-init
    encoder (the floor, rebuilt from the seed); stored in ``eval.json["semi_supervised"]``."""

    name = "semi_supervised"
    version = "v1"
    schedule = FINAL
    metrics = ("top1", "top5")
    description = (
        "Benchmark-defined (not from the paper): class-balanced 1%/10% labelled subset (seed recorded); final "
        "global encoder + Linear(d, classes) fine-tuned with SGD nesterov, lr 0.01/0.1, wd 5e-4, batch 64, "
        "50 epochs cosine, training augmentation; final-epoch top-1/top-5 on the test split."
    )
    compute = staticmethod(semi_supervised_finetune)

    def finish(self, run: RunContext) -> dict[str, Any] | None:
        out = semi_supervised_eval(run.trainer.global_model, run.data, run.cfg, run.device, run.augment)
        if run.cfg.eval.at_init and run.init_model is not None:
            init = run.init_model().to(run.device)
            out["init"] = semi_supervised_eval(init, run.data, run.cfg, run.device, run.augment)["results"]
        return out


SEMI_SUPERVISED = register_protocol(SemiSupervised())

"""Per-round time of fedx-bench's fast path against a plain, reference-style implementation.

Usage::

    python3 benchmarks/round_time.py suites/quickstart.yaml --rounds 1 --clients-limit 3
    python3 benchmarks/round_time.py suites/table1-simclr.yaml --run-index 1 --data-root DIR \\
        --clients-limit 1 --local-epochs 1          # paper model on a GPU

Why this exists: the package's speed claims (vectorised on-device augmentation, an index-stream
random batch, a closed-form linear probe) are only worth something if they are measured against the
way the reference code does the same work, on the same machine, in the same process, with the same
model initialisation, data, partition and seed. Both paths here:

* start from identical weights (``build_method`` seeds torch before building the model; checked);
* train the same clients of the same partition for the same number of steps and FedAvg them with
  ``fedx_bench.federated.fedavg``;
* evaluate with the same linear-probe protocol and probe seed.

(a) **ours**: ``FederatedTrainer.run_round()`` then ``runner.evaluate`` (fast probe; linear probe
only, so that both paths evaluate the same protocols).

(b) **plain** (written here, as the reference does it): per-image PIL ``torchvision.transforms`` in a
``Dataset.__getitem__`` returning two views, ``DataLoader(batch 64, shuffle, drop_last)`` plus an
independently shuffled copy for the random batch (first view only), the same model and FedX loss
(``model.training_step(x1, x2, xr)`` after ``model.on_round_start``), a fresh optimiser per client
round, ``loss.item()`` per step (the reference logs it), FedAvg. Evaluation extracts features
through a ``DataLoader`` over the per-image test transform (batch 256) and trains
``linear_probe_plain`` (``TensorDataset`` + ``DataLoader``, batch 64).

The two paths do not see the same augmentation draws (PIL + the global RNG vs batched ops + a
seeded generator), so their probe accuracies agree only within run-to-run noise. To separate the
evaluators from the training paths, the fast evaluator is also run (untimed) on the plain path's
model: that pair must agree up to float rounding.

The share of local training spent outside the model (data, augmentation, Python) is measured by
timing forward + backward + optimiser step on their own (see ``common.ModelTimer``); for our path
the trainer's ``training_step`` is wrapped and a global optimiser step post-hook closes the bracket,
so no package code changes.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from common import (
    ModelTimer,
    Phase,
    device_name,
    load_average,
    load_run,
    measure,
    pct,
    ratio,
    ru_maxrss_mb,
    synchronize,
)
from PIL import Image
from torch import Tensor
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.data import DataLoader, Dataset

import fedx_bench.runner as runner_module
from fedx_bench.config import RunConfig
from fedx_bench.data.augment import build_augment, normalize
from fedx_bench.evaluation import linear_probe_plain
from fedx_bench.federated import FederatedTrainer, derive_seed, fedavg, make_optimizer, resolve_device
from fedx_bench.methods import Method
from fedx_bench.runner import (
    DatasetCache,
    PreparedData,
    augment_name,
    build_method,
    evaluate,
    make_partition,
    prepare_data,
)

# --------------------------------------------------------------------------------------------------
# The plain (reference-style) implementation
# --------------------------------------------------------------------------------------------------


def _reflect_pad4(x: Tensor) -> Tensor:
    """The reference's ``Lambda``: ``F.pad(x.unsqueeze(0), (4,4,4,4), mode="reflect").squeeze()`` on one image.

    ``squeeze(0)`` instead of ``squeeze()`` so single-channel images keep their channel dimension.
    """
    return F.pad(x.unsqueeze(0), (4, 4, 4, 4), mode="reflect").squeeze(0)


def plain_train_transform(name: str, mean: Sequence[float], std: Sequence[float], size: int) -> Callable[..., Tensor]:
    """The per-image PIL pipeline the reference builds for each augmentation (spec §1.5).

    ``reference-cifar`` keeps the reference's ``ColorJitter(brightness=0)``: a no-op on the pixels, but
    the reference pays for it (it still draws an op order per image), and so does this baseline.
    """
    norm = T.Normalize(list(mean), list(std))
    if name == "reference-cifar":
        return T.Compose([
            T.ToTensor(), T.Lambda(_reflect_pad4), T.ToPILImage(), T.ColorJitter(brightness=0),
            T.RandomCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), norm,
        ])
    if name == "reference-svhn":
        return T.Compose([
            T.RandomCrop(size, padding=4), T.ColorJitter(0.4, 0.4, 0.4, 0.4), T.RandomRotation(15),
            T.ToTensor(), norm,
        ])
    if name == "simclr":
        return T.Compose([
            T.RandomResizedCrop(size, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
            T.ToTensor(), norm,
        ])
    if name == "none":
        return T.Compose([T.ToTensor(), norm])
    raise SystemExit(f"round_time: no plain pipeline for augmentation {name!r}")


def _pil(image: np.ndarray) -> Image.Image:
    """A stored uint8 (H, W, C) image as PIL, as the reference's ``Image.fromarray`` (C=1 → mode L)."""
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


class ImageDataset(Dataset):
    """Images through a per-image transform (the test transform: reference-style feature extraction)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable[..., Tensor]) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.transform(_pil(self.images[i])), int(self.labels[i])


class TwoViewDataset(ImageDataset):
    """The reference's truncated dataset: one client's images, two independent draws per ``__getitem__``."""

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, int]:  # type: ignore[override]
        img = _pil(self.images[i])
        return self.transform(img), self.transform(img), int(self.labels[i])


@dataclass
class PlainClient:
    """A client's reference-style loaders, built once before training as the reference does."""

    size: int
    images: np.ndarray
    loader: DataLoader | None
    random_loader: DataLoader | None


class PlainFederated:
    """FedAvg over per-client ``DataLoader``s of per-image PIL transforms: the reference's structure.

    The optimiser is re-created for every client round, as in the reference; a config with
    ``optim.reset_each_round: false`` (our trainer then keeps optimiser state) is compared unevenly.
    """

    def __init__(
        self,
        cfg: RunConfig,
        model: Method,
        train_x: np.ndarray,
        train_y: np.ndarray,
        client_indices: list[np.ndarray],
        transform: Callable[..., Tensor],
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
        workers: int = 0,
    ) -> None:
        self.cfg = cfg
        self.mean, self.std = mean, std  # for prepare_local_training's test transform
        self.device = device
        self.global_model = model.to(device)
        self.local_model = copy.deepcopy(self.global_model)
        self.client_states: dict[int, Any] = {}
        self.need_random = bool(getattr(model, "uses_random_batch", False))
        self.clients: list[PlainClient] = []
        o = cfg.optim
        for ix in client_indices:
            n = len(ix)
            bsz = min(o.batch_size, n)  # same tiny-client rule as the trainer, so step counts match
            rbsz = min(o.random_batch_size or o.batch_size, n)
            ds = TwoViewDataset(train_x[ix], train_y[ix], transform)
            if bsz < 2:
                self.clients.append(PlainClient(n, train_x[ix], None, None))
                continue
            loader = DataLoader(ds, batch_size=bsz, shuffle=True, drop_last=True, num_workers=workers)
            rloader = (DataLoader(ds, batch_size=rbsz, shuffle=True, drop_last=True, num_workers=workers)
                       if self.need_random else None)
            self.clients.append(PlainClient(n, train_x[ix], loader, rloader))

    def run_round(self, r: int, selected: list[int], timer: ModelTimer) -> int:
        """Train ``selected`` clients from the global model, FedAvg them; returns the number of local steps."""
        global_shared = {k: v.detach().clone() for k, v in self.global_model.shared_state().items()}
        states, weights, steps = [], [], 0
        for k in selected:
            steps += self._train_client(r, k, global_shared, timer)
            states.append({kk: v.detach().clone() for kk, v in self.local_model.shared_state().items()})
            weights.append(self.clients[k].size)
        self.global_model.load_shared_state(fedavg(states, weights))
        return steps

    def _train_client(self, r: int, k: int, global_shared: dict[str, Tensor], timer: ModelTimer) -> int:
        cfg, model, c, dev = self.cfg, self.local_model, self.clients[k], self.device
        torch.manual_seed(derive_seed(cfg.seed, r, k, 1))  # shuffles and PIL transforms use the global RNG
        model.load_shared_state(global_shared)
        model.on_round_start(r, self.client_states.get(k))
        imgs = torch.from_numpy(c.images).to(dev)
        model.prepare_local_training(imgs, lambda x: normalize(x, self.mean, self.std))
        model.train()
        opt = make_optimizer(model.trainable_parameters(), cfg)
        steps = 0
        if c.loader is None:
            return 0
        random_iter: Iterator[Any] | None = iter(c.random_loader) if c.random_loader is not None else None
        loss_log: list[float] = []
        for _ in range(cfg.federation.local_epochs):
            for x1, x2, _ in c.loader:
                xr = None
                if random_iter is not None:
                    try:
                        xr = next(random_iter)[0]
                    except StopIteration:
                        random_iter = iter(c.random_loader)  # type: ignore[arg-type]
                        xr = next(random_iter)[0]
                    xr = xr.to(dev)
                x1, x2 = x1.to(dev), x2.to(dev)
                timer.begin()
                out = model.training_step(x1, x2, xr)
                opt.zero_grad()
                out.loss.backward()
                opt.step()
                timer.end()
                model.after_optimizer_step()
                loss_log.append(out.loss.item())  # the reference logs every step's loss (a host sync on GPU)
                steps += 1
        self.client_states[k] = model.client_state()
        return steps


@torch.no_grad()
def plain_features(encoder: torch.nn.Module, images: np.ndarray, labels: np.ndarray,
                   transform: Callable[..., Tensor], device: torch.device, batch_size: int = 256) -> Tensor:
    """Reference feature extraction: per-image test transform in a ``DataLoader`` (batch 256, no shuffle)."""
    encoder.eval()
    loader = DataLoader(ImageDataset(images, labels, transform), batch_size=batch_size, shuffle=False)
    return torch.cat([encoder(x.to(device)).flatten(1) for x, _ in loader])


def plain_evaluate(model: Method, data: PreparedData, cfg: RunConfig, device: torch.device, round_idx: int,
                   clock: FeatureClock) -> dict[str, float]:
    """Linear probe the reference way, with the same protocol and probe seed as ``runner.evaluate``."""
    ds, e = data.dataset, cfg.eval
    tf = plain_train_transform("none", ds.mean, ds.std, ds.train_x.shape[1])
    was_training = model.training
    with clock:
        tr = plain_features(model.encoder, ds.train_x, ds.train_y, tf, device)
        te = plain_features(model.encoder, ds.test_x, ds.test_y, tf, device)
    model.train(was_training)
    r = linear_probe_plain(
        tr, torch.from_numpy(ds.train_y).to(device), te, torch.from_numpy(ds.test_y).to(device),
        epochs=e.probe_epochs, lr=e.probe_lr, weight_decay=e.probe_weight_decay, batch_size=e.probe_batch_size,
        seed=derive_seed(cfg.seed, round_idx, 7) % (2**31), num_classes=ds.num_classes, device=device,
    )
    return {"linear_probe_top1": float(r["top1"]), "linear_probe_top5": float(r["top5"])}


class FeatureClock:
    """Accumulates wall time spent extracting features, to split an evaluation into features vs probe.

    Used as a context manager around the plain path's extraction, and (via :meth:`patch_runner`) around
    every ``extract_features`` call that ``runner.evaluate`` makes, without changing package code.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def __enter__(self) -> FeatureClock:
        synchronize(self.device)
        self._t = time.perf_counter()
        self._c = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds += time.perf_counter() - self._t
        self.cpu_seconds += time.process_time() - self._c

    def patch_runner(self) -> Callable[[], None]:
        """Time ``runner.extract_features`` calls; returns the function that restores the original."""
        original = runner_module.extract_features

        def timed(*args: Any, **kwargs: Any) -> Tensor:
            with self:
                return original(*args, **kwargs)

        runner_module.extract_features = timed
        return lambda: setattr(runner_module, "extract_features", original)


# --------------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------------


@dataclass
class PathRound:
    """One round of one path: training and evaluation phases, model-part time, steps, accuracy."""

    train: Phase
    evaluation: Phase
    model_seconds: float
    model_cpu_seconds: float | None  # CPU device only: process CPU time inside the model brackets
    feature_seconds: float  # part of the evaluation spent extracting features (the rest is the probe)
    feature_cpu_seconds: float
    steps: int
    top1: float

    @property
    def outside_share(self) -> float:
        return pct(self.train.wall - self.model_seconds, self.train.wall)

    @property
    def outside_share_cpu(self) -> float | None:
        """The same share in process CPU time (CPU device only; robust to other load on the machine)."""
        if self.model_cpu_seconds is None:
            return None
        return pct(self.train.cpu - self.model_cpu_seconds, self.train.cpu)


@dataclass
class Results:
    config: str
    run_label: str
    device: str
    rounds: list[dict[str, PathRound]] = field(default_factory=list)
    evaluator_check: list[tuple[float, float]] = field(default_factory=list)  # (fast, plain) on the plain model


def _instrument_trainer(trainer: FederatedTrainer, timer: ModelTimer) -> Callable[[], None]:
    """Bracket the trainer's forward+backward+step with ``timer`` without changing package code.

    ``training_step`` is wrapped on the local-model instance (opens the bracket); a global optimiser
    step post-hook closes it. Returns a function that removes the hook.
    """
    model = trainer.local_model
    inner = model.training_step

    def timed_step(*args: Any, **kwargs: Any) -> Any:
        timer.begin()
        return inner(*args, **kwargs)

    model.training_step = timed_step  # type: ignore[method-assign]
    handle = register_optimizer_step_post_hook(lambda *_: timer.end())
    return handle.remove


def _warmup(model: Method, trainer: FederatedTrainer, cfg: RunConfig) -> None:
    """Two untimed steps on a throwaway copy: first-call costs (thread pools, allocator, cudnn autotune)
    would otherwise land on whichever path runs first."""
    m = copy.deepcopy(model)
    m.on_round_start(0, None)
    m.train()
    opt = make_optimizer(m.trainable_parameters(), cfg)
    gen = torch.Generator(device=trainer.device).manual_seed(0)
    idx = trainer.client_indices[0][: cfg.optim.batch_size]
    x = trainer.images[idx]
    for _ in range(2):
        xr = trainer.augment(x, gen) if getattr(m, "uses_random_batch", False) else None
        out = m.training_step(trainer.augment(x, gen), trainer.augment(x, gen), xr)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    del m, opt


def _busy_machine() -> str | None:
    """A description of the load when the 1-minute load average exceeds the visible cores, else None."""
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        return None
    cores = os.cpu_count() or 1
    return f"load average {load1:.1f} > {cores} cores" if load1 > cores else None


def _eval_config(cfg: RunConfig, probe_epochs: int | None) -> RunConfig:
    """Linear probe only (the plain path implements only that protocol), optionally fewer probe epochs."""
    ev = dataclasses.replace(cfg.eval, protocols=["linear_probe"])
    if probe_epochs is not None:
        ev = dataclasses.replace(ev, probe_epochs=probe_epochs)
    return dataclasses.replace(cfg, eval=ev)


def _round_ours(trainer: FederatedTrainer, data: PreparedData, cfg: RunConfig, device: torch.device, r: int,
                timer: ModelTimer) -> PathRound:
    """One round of our path: ``trainer.run_round()`` then ``runner.evaluate``, both measured."""
    timer.reset()
    remove_hook = _instrument_trainer(trainer, timer)
    try:
        with measure(device) as train:
            rr = trainer.run_round()
    finally:
        remove_hook()
        trainer.local_model.__dict__.pop("training_step", None)  # back to the class method
    model_s = timer.total()
    clock = FeatureClock(device)
    restore = clock.patch_runner()
    try:
        with measure(device) as ev:
            m = evaluate(trainer.global_model, data, cfg, device, r)
    finally:
        restore()
    return PathRound(train, ev, model_s, timer.cpu_seconds if device.type == "cpu" else None, clock.seconds,
                     clock.cpu_seconds, rr.steps, m["linear_probe_top1"])


def _round_plain(plain: PlainFederated, data: PreparedData, cfg: RunConfig, device: torch.device, r: int,
                 selected: list[int], timer: ModelTimer) -> PathRound:
    """One round of the plain path on the same clients, then its reference-style evaluation."""
    timer.reset()
    with measure(device) as train:
        steps = plain.run_round(r, selected, timer)
    model_s = timer.total()
    clock = FeatureClock(device)
    with measure(device) as ev:
        m = plain_evaluate(plain.global_model, data, cfg, device, r, clock)
    return PathRound(train, ev, model_s, timer.cpu_seconds if device.type == "cpu" else None, clock.seconds,
                     clock.cpu_seconds, steps, m["linear_probe_top1"])


def run(args: argparse.Namespace) -> Results:
    cfg = load_run(args.config, args.run_index)
    if args.local_epochs is not None:
        cfg = dataclasses.replace(cfg, federation=dataclasses.replace(cfg.federation, local_epochs=args.local_epochs))
    cfg = _eval_config(cfg, args.probe_epochs)
    device = resolve_device(args.device or cfg.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic  # as runner._execute
        torch.backends.cudnn.deterministic = cfg.deterministic

    data = prepare_data(cfg, DatasetCache(args.data_root))
    ds = data.dataset
    partition = make_partition(cfg, data.train_y, ds.num_classes)
    aug = augment_name(cfg)

    ours_model = build_method(cfg, ds.channels)
    plain_model = build_method(cfg, ds.channels)
    same = all(torch.equal(a, b) for a, b in zip(ours_model.state_dict().values(), plain_model.state_dict().values()))
    if not same:
        raise SystemExit("round_time: the two paths did not get the same initial weights")

    trainer = FederatedTrainer(
        cfg, ours_model, torch.from_numpy(data.train_x), partition.client_indices,
        build_augment(aug, ds.mean, ds.std, ds.train_x.shape[1]), device,
        transform=lambda x: normalize(x, ds.mean, ds.std),
    )
    select_all = trainer.select_clients
    limit = args.clients_limit

    def select(r: int) -> list[int]:
        sel = select_all(r)
        return sel[:limit] if limit else sel

    trainer.select_clients = select  # type: ignore[method-assign]
    plain = PlainFederated(
        cfg, plain_model, data.train_x, data.train_y, partition.client_indices,
        plain_train_transform(aug, ds.mean, ds.std, ds.train_x.shape[1]), ds.mean, ds.std, device,
        workers=args.plain_workers,
    )

    n_all = len(partition.client_indices)
    print(f"round_time: {args.config} run {args.run_index} ({cfg.label}), method {trainer.global_model.name}, "
          f"backbone {cfg.model.backbone}, augment {aug}")
    print(f"device: {device_name(device)}; torch {torch.__version__}; load average {load_average()}")
    print(f"data: {len(data.train_x)} train / {len(ds.test_x)} test images, {n_all} clients, "
          f"{cfg.federation.local_epochs} local epochs, batch {cfg.optim.batch_size}"
          f"{' + random ' + str(cfg.optim.random_batch_size or cfg.optim.batch_size) if plain.need_random else ''}, "
          f"probe {cfg.eval.probe_epochs} epochs (linear probe only)")
    if limit and limit < n_all:
        print(f"NOTE: --clients-limit {limit}: only the first {limit} selected clients train each round, on both "
              f"paths (FedAvg over those); a full round trains {n_all}.")
    print(f"plain path: per-image PIL transforms, DataLoader num_workers={args.plain_workers}")
    busy = _busy_machine()
    if device.type == "cpu" and torch.get_num_threads() > 1 and busy:
        print(f"WARNING: {busy}; with {torch.get_num_threads()} torch threads each parallel op waits for a "
              "descheduled thread, which slows small ops (the plain probe most) many times over; "
              "--threads 1 gives steadier numbers.")

    _warmup(ours_model, trainer, cfg)
    res = Results(str(args.config), cfg.label, device_name(device))
    timer = ModelTimer(device)
    for i in range(args.rounds):
        r = trainer.round + 1
        selected = trainer.select_clients(r)
        # Alternate which path goes first, so that drifting load on a shared machine does not always
        # favour the same one (round 1: ours first).
        if i % 2 == 0:
            ours = _round_ours(trainer, data, cfg, device, r, timer)
            plain_round = _round_plain(plain, data, cfg, device, r, selected, timer)
        else:
            plain_round = _round_plain(plain, data, cfg, device, r, selected, timer)
            ours = _round_ours(trainer, data, cfg, device, r, timer)
        m_check = evaluate(plain.global_model, data, cfg, device, r)  # untimed: fast evaluator, plain model
        rd = {"ours": ours, "plain": plain_round}
        res.rounds.append(rd)
        res.evaluator_check.append((m_check["linear_probe_top1"], plain_round.top1))
        _print_round(r, rd, res.evaluator_check[-1], len(selected))
    _print_summary(res, device)
    return res


# --------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------


def _line(what: str, ours: float, plain: float, extra_o: str = "", extra_p: str = "") -> str:
    return (f"  {what:<16} ours {ours:9.2f} s{extra_o}   plain {plain:9.2f} s{extra_p}   "
            f"plain/ours {ratio(plain, ours):6.2f}x")


def _print_round(r: int, rd: dict[str, PathRound], check: tuple[float, float], n_clients: int) -> None:
    o, p = rd["ours"], rd["plain"]
    print(f"round {r} ({n_clients} clients; steps: ours {o.steps}, plain {p.steps})")
    print(_line("local training", o.train.wall, p.train.wall,
                f" (cpu {o.train.cpu:7.1f} s)", f" (cpu {p.train.cpu:7.1f} s)")
          + f"   cpu-time ratio {ratio(p.train.cpu, o.train.cpu):.2f}x")
    print(_line("evaluation", o.evaluation.wall, p.evaluation.wall,
                f" (cpu {o.evaluation.cpu:7.1f} s)", f" (cpu {p.evaluation.cpu:7.1f} s)")
          + f"   cpu-time ratio {ratio(p.evaluation.cpu, o.evaluation.cpu):.2f}x")
    o_pc, p_pc = o.evaluation.cpu - o.feature_cpu_seconds, p.evaluation.cpu - p.feature_cpu_seconds
    print(_line("  features", o.feature_seconds, p.feature_seconds,
                f" (cpu {o.feature_cpu_seconds:7.1f} s)", f" (cpu {p.feature_cpu_seconds:7.1f} s)")
          + f"   cpu-time ratio {ratio(p.feature_cpu_seconds, o.feature_cpu_seconds):.2f}x")
    print(_line("  probe", o.evaluation.wall - o.feature_seconds, p.evaluation.wall - p.feature_seconds,
                f" (cpu {o_pc:7.1f} s)", f" (cpu {p_pc:7.1f} s)") + f"   cpu-time ratio {ratio(p_pc, o_pc):.2f}x")
    o_all, p_all = o.train.cpu + o.evaluation.cpu, p.train.cpu + p.evaluation.cpu
    print(_line("training+eval", o.train.wall + o.evaluation.wall, p.train.wall + p.evaluation.wall,
                f" (cpu {o_all:7.1f} s)", f" (cpu {p_all:7.1f} s)") + f"   cpu-time ratio {ratio(p_all, o_all):.2f}x")
    print(f"  outside-model share of local training: ours {o.outside_share:5.1f}% "
          f"(model {o.model_seconds:.2f} s of {o.train.wall:.2f} s)   plain {p.outside_share:5.1f}% "
          f"(model {p.model_seconds:.2f} s of {p.train.wall:.2f} s)")
    if o.outside_share_cpu is not None and p.outside_share_cpu is not None:
        print(f"  same in process CPU time:              ours {o.outside_share_cpu:5.1f}% "
              f"(model {o.model_cpu_seconds:.2f} s of {o.train.cpu:.2f} s)   plain {p.outside_share_cpu:5.1f}% "
              f"(model {p.model_cpu_seconds:.2f} s of {p.train.cpu:.2f} s)")
    print(f"  linear probe top-1: ours {o.top1:.2f}   plain {p.top1:.2f}   (training paths differ in "
          f"augmentation draws: agree within noise)")
    print(f"  evaluator check on the plain model: fast {check[0]:.2f}   plain {check[1]:.2f}   "
          f"diff {check[0] - check[1]:+.2f} (should be ~0)")


def _print_summary(res: Results, device: torch.device) -> None:
    def tot(path: str, phase: str, what: str = "wall") -> float:
        return sum(getattr(getattr(rd[path], phase), what) for rd in res.rounds)

    n = len(res.rounds)
    print(f"summary over {n} round(s) (per-round means; wall, then process CPU time):")
    for label, phases in (("local training", ("train",)), ("evaluation", ("evaluation",)),
                          ("training+eval", ("train", "evaluation"))):
        o = sum(tot("ours", ph) for ph in phases) / n
        p = sum(tot("plain", ph) for ph in phases) / n
        oc = sum(tot("ours", ph, "cpu") for ph in phases) / n
        pc = sum(tot("plain", ph, "cpu") for ph in phases) / n
        cpu_ratio = f"   cpu-time ratio {ratio(pc, oc):.2f}x"
        print(_line(label, o, p, f" (cpu {oc:7.1f} s)", f" (cpu {pc:7.1f} s)") + cpu_ratio)
    o_tr, p_tr = tot("ours", "train"), tot("plain", "train")
    o_m = sum(rd["ours"].model_seconds for rd in res.rounds)
    p_m = sum(rd["plain"].model_seconds for rd in res.rounds)
    print(f"  outside-model share: ours {pct(o_tr - o_m, o_tr):.1f}%   plain {pct(p_tr - p_m, p_tr):.1f}%")
    print(f"  linear probe top-1 (last round): ours {res.rounds[-1]['ours'].top1:.2f}   "
          f"plain {res.rounds[-1]['plain'].top1:.2f}")

    def peak(path: str) -> str:
        rss = max(max(rd[path].train.peak_rss_mb, rd[path].evaluation.peak_rss_mb) for rd in res.rounds)
        s = f"{rss:.0f} MiB RSS"
        if device.type == "cuda":
            cu = max(max(rd[path].train.peak_cuda_mb or 0.0, rd[path].evaluation.peak_cuda_mb or 0.0)
                     for rd in res.rounds)
            s += f", {cu:.0f} MiB CUDA max_memory_allocated"
        return s

    print(f"  peak memory during its phases: ours {peak('ours')}   plain {peak('plain')}   "
          f"(process ru_maxrss {ru_maxrss_mb():.0f} MiB)")
    print(f"  load average at the end: {load_average()}")


def _to_json(res: Results) -> dict[str, Any]:
    return {
        "config": res.config, "run": res.run_label, "device": res.device, "load_average": load_average(),
        "rounds": [{k: {**dataclasses.asdict(v), "outside_share": v.outside_share,
                        "outside_share_cpu": v.outside_share_cpu} for k, v in rd.items()}
                   for rd in res.rounds],
        "evaluator_check": res.evaluator_check,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="suite YAML (e.g. suites/quickstart.yaml)")
    ap.add_argument("--run-index", type=int, default=0, help="which run of the suite (default: the first)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds to time (each followed by an evaluation)")
    ap.add_argument("--clients-limit", type=int, default=None, metavar="K",
                    help="train only the first K selected clients per round, on both paths (shorter CPU runs)")
    ap.add_argument("--probe-epochs", type=int, default=None, metavar="E", help="override eval.probe_epochs")
    ap.add_argument("--local-epochs", type=int, default=None, help="override federation.local_epochs")
    ap.add_argument("--data-root", default=None, help="dataset root (as fedx-bench run --data-root)")
    ap.add_argument("--device", default=None, help="auto | cpu | cuda[:N] (default: the config's, usually auto)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--plain-workers", type=int, default=0,
                    help="DataLoader workers of the plain path (the reference uses 0)")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the measurements as JSON")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if args.clients_limit is not None and args.clients_limit < 1:
        ap.error("--clients-limit must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows per line when redirected to a log file
    t0 = time.perf_counter()
    res = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(_to_json(res), indent=2))
    print(f"total benchmark wall time {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The shared federated loop: broadcast, local training, aggregation (``federation.aggregator``), per-round hooks.

Every method plugs in through the ``Method`` interface; nothing here knows about SimCLR or FedX.
All randomness of a client's round (shuffles, augmentations, random batch) comes from a generator
seeded by (seed, round, client), so a run resumed from a round-boundary checkpoint repeats exactly.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .aggregation import AGGREGATORS, fedavg
from .config import RunConfig
from .methods import ClientState, Method

__all__ = ["ClientData", "FederatedTrainer", "RoundResult", "derive_seed", "fedavg", "make_optimizer", "resolve_device"]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (run seed, round, client, purpose): independent streams per use."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda if available else cpu; an explicit cuda request without CUDA is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from .errors import UserError

        raise UserError(f"device {name!r} requested but CUDA is not available on this machine (use --device cpu)")
    return torch.device(name)


@dataclass
class ClientData:
    """A client's view of the training images: uint8 images on the device and its index list."""

    images: Tensor  # (N, H, W, C) uint8, the whole (subsampled) training split, on device
    indices: Tensor  # (n_k,) int64 on device


@dataclass
class RoundResult:
    round: int
    clients: list[int]
    losses: dict[str, float]
    steps: int
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


Augment = Callable[[Tensor, torch.Generator], Tensor]


def make_optimizer(params: list[torch.nn.Parameter], cfg: RunConfig) -> torch.optim.Optimizer:
    """The local optimiser of ``cfg.optim`` over ``params`` (also used by the benchmarks' reference loop)."""
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)


class FederatedTrainer:
    """Runs federated rounds of a method; holds the global model and every client's persistent state. The server's
    rule is the registered aggregator named by ``federation.aggregator`` (FedAvg by default)."""

    def __init__(
        self,
        cfg: RunConfig,
        global_model: Method,
        images: Tensor,
        client_indices: list[np.ndarray],
        augment: Augment,
        device: torch.device,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = device
        self.aggregator = AGGREGATORS.get(cfg.federation.aggregator)
        self.global_model = global_model.to(device)
        perf = cfg.perf
        self.channels_last = perf.channels_last
        if self.channels_last:
            self.global_model.to(memory_format=torch.channels_last)
        self.amp = perf.amp == "bf16" and device.type == "cuda"
        self.local_model = copy.deepcopy(self.global_model)
        if perf.compile and device.type == "cuda":
            self.local_model.encoder.compile()
        # Called after each client's local training with (round, client, local model) while the global
        # model is still the round's starting point: per-client analyses such as drift angles.
        self.on_client_trained: Callable[[int, int, Method], None] | None = None
        self.images = images.to(device)
        self.client_indices = [torch.as_tensor(ix, dtype=torch.long, device=device) for ix in client_indices]
        self.client_sizes = [len(ix) for ix in client_indices]
        self.augment = augment
        self.transform = transform  # test transform (uint8 -> normalised float), for prepare_local_training
        self.client_states: dict[int, ClientState] = {}
        self.optimizer_states: dict[int, dict[str, Any]] = {}
        self.round = 0  # rounds completed
        self.on_progress: Callable[[dict[str, Any]], None] | None = None  # throttled in-round progress
        self.progress_interval = 30.0  # seconds between in-round progress callbacks
        self._last_progress = time.perf_counter()

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue after ``self.round`` completed rounds."""
        return {
            "round": self.round,
            "global": {k: v.detach().cpu().clone() for k, v in self.global_model.state_dict().items()},
            "client_states": _to_cpu(self.client_states),
            "optimizer_states": _to_cpu(self.optimizer_states),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.round = int(state["round"])
        self.global_model.load_state_dict(state["global"])
        self.client_states = _to_device(state["client_states"], self.device)
        self.optimizer_states = _to_device(state["optimizer_states"], self.device)

    # ------------------------------------------------------------------ training
    def select_clients(self, round_idx: int) -> list[int]:
        n = len(self.client_indices)
        frac = self.cfg.federation.sample_fraction
        if frac >= 1.0:
            return list(range(n))
        m = max(1, int(n * frac))
        rng = np.random.default_rng(derive_seed(self.cfg.seed, round_idx, 1_000_003))
        return sorted(int(k) for k in rng.choice(n, size=m, replace=False))

    def run_round(self) -> RoundResult:
        """Train one round (round number ``self.round + 1``) and aggregate."""
        r = self.round + 1
        t0 = time.perf_counter()
        selected = self.select_clients(r)
        global_shared = {k: v.detach().clone() for k, v in self.global_model.shared_state().items()}
        states, weights = [], []
        sums: dict[str, float] = {}
        stats: dict[str, list[float]] = {}
        total_steps = 0
        for pos, k in enumerate(selected):
            self._client_pos = (pos + 1, len(selected))
            steps, logs = self._train_client(r, k, global_shared)
            for name, val in logs.items():
                sums[name] = sums.get(name, 0.0) + val
            total_steps += steps
            for name, val in self.local_model.round_stats().items():
                stats.setdefault(name, []).append(float(val))
            states.append({kk: v.detach().clone() for kk, v in self.local_model.shared_state().items()})
            weights.append(self.client_sizes[k])
        param_keys = frozenset(k for k, _ in self.global_model.named_parameters())
        agg = self.aggregator(states, weights, global_shared, param_keys)
        self.global_model.load_shared_state(agg.state)
        self.round = r
        losses = {name: v / max(total_steps, 1) for name, v in sums.items()}
        extra: dict[str, Any] = {}
        if agg.stats:  # e.g. L-DAWA's mean / minimum layer cosine
            extra["aggregator_stats"] = dict(agg.stats)
        if stats:  # mean over the round's clients (e.g. FedU: share of clients keeping their local predictor)
            extra["method_stats"] = {name: sum(v) / len(v) for name, v in stats.items()}
        return RoundResult(r, selected, losses, total_steps, time.perf_counter() - t0, extra)

    def _train_client(self, r: int, k: int, global_shared: dict[str, Tensor]) -> tuple[int, dict[str, float]]:
        cfg = self.cfg
        model = self.local_model
        torch.manual_seed(derive_seed(cfg.seed, r, k, 1))
        gen = torch.Generator(device=self.device)
        gen.manual_seed(derive_seed(cfg.seed, r, k, 2))
        model.load_shared_state(global_shared)
        model.on_round_start(r, self.client_states.get(k))
        idx = self.client_indices[k]
        if self.transform is not None:
            model.prepare_local_training(self.images[idx], self.transform)
        model.train()
        opt = make_optimizer(model.trainable_parameters(), cfg)
        if not cfg.optim.reset_each_round and k in self.optimizer_states:
            opt.load_state_dict(self.optimizer_states[k])
        n = len(idx)
        bsz = min(cfg.optim.batch_size, n)  # tiny clients train on one full batch (reference divides by zero)
        rbsz = min(cfg.optim.random_batch_size or cfg.optim.batch_size, n)
        need_r = bool(getattr(model, "uses_random_batch", False))
        rperm: Tensor | None = None
        rpos = 0
        sums: dict[str, Tensor] = {}
        steps = 0
        if bsz < 2:
            return 0, {}
        for _ in range(cfg.federation.local_epochs):
            perm = torch.randperm(n, generator=gen, device=self.device)
            for s in range(n // bsz):
                bi = idx[perm[s * bsz : (s + 1) * bsz]]
                x = self.images[bi]
                x1 = self.augment(x, gen)
                x2 = self.augment(x, gen)
                xr = None
                if need_r:
                    if rperm is None or rpos + rbsz > n:
                        rperm = torch.randperm(n, generator=gen, device=self.device)
                        rpos = 0
                    xr = self.augment(self.images[idx[rperm[rpos : rpos + rbsz]]], gen)
                    rpos += rbsz
                if self.channels_last:
                    x1 = x1.contiguous(memory_format=torch.channels_last)
                    x2 = x2.contiguous(memory_format=torch.channels_last)
                    xr = None if xr is None else xr.contiguous(memory_format=torch.channels_last)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    out = model.training_step(x1, x2, xr)
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                model.after_optimizer_step()
                for name, v in out.logs.items():
                    sums[name] = sums[name] + v if name in sums else v.clone()
                if "loss" not in out.logs:
                    sums["loss"] = sums["loss"] + out.loss.detach() if "loss" in sums else out.loss.detach().clone()
                steps += 1
                if self.on_progress is not None and time.perf_counter() - self._last_progress > self.progress_interval:
                    self._last_progress = time.perf_counter()
                    pos, total = self._client_pos
                    self.on_progress({"round": r, "client": pos, "clients": total, "step": steps,
                                      "steps": cfg.federation.local_epochs * (n // bsz),
                                      "loss": float(out.loss.detach())})
        self.client_states[k] = model.client_state()
        if self.on_client_trained is not None:
            self.on_client_trained(r, k, model)
        if not cfg.optim.reset_each_round:
            self.optimizer_states[k] = copy.deepcopy(opt.state_dict())
        return steps, {name: float(v) for name, v in sums.items()}


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj

"""Embedding-angle analysis: protocol ``angle@v1`` (benchmark-defined, protocols.md; spec §4.3 is UNKNOWN).

The paper argues with an arccos measure that FedX keeps local models closer to the global one and
separates classes better, without saying exactly what it measured. ``angle@v1`` fixes it, on
L2-normalised backbone features of the test split after a chosen round:

1. Local-global drift (:func:`drift_summary`): for each participating client k, the angle
   θ(x) = arccos(ẑ_k(x)·ẑ_G(x)) in degrees between its model after local training and the global
   model G the round started from, for every test image x. Reported per client and pooled (mean,
   median, histogram on fixed bins over [0°, 180°]) and split by whether x's class is *frequent* in
   client k's data -- its share of the client's samples is at least 1/num_classes, i.e. at least the
   uniform share -- or *rare* (below it, including classes the client never saw).
2. Class structure of the aggregated global model (:func:`class_angle_structure`): the mean pairwise
   angle between test embeddings of the same class (intra, self-pairs excluded) and of different
   classes (inter), and the gap inter − intra, per class and pooled over all pairs.

Angles are computed in float64: in float32, arccos near 1 is off by ~0.02°, which would bias the
small intra-class and drift angles. Pairwise angles are formed one row chunk of the Gram matrix at a
time, so memory stays at ``chunk x N`` even for the 26k-image SVHN test split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..store import atomic_write_json
from .features import extract_features
from .protocol import Protocol, RunContext, register_protocol

_RAD2DEG = 180.0 / math.pi


def angles_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise angle in degrees between ``a[i]`` and ``b[i]`` (both (N, d)), after L2 normalisation; float64."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"expected two (N, d) tensors of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    an = F.normalize(a.to(torch.float64), dim=1)
    bn = F.normalize(b.to(a.device, torch.float64), dim=1)
    cos = (an * bn).sum(dim=1).clamp_(-1.0, 1.0)
    return torch.arccos(cos).mul_(_RAD2DEG)


def bin_edges(bins: int) -> np.ndarray:
    """``bins + 1`` equally spaced edges over [0°, 180°] (the last bin includes 180°)."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    return np.linspace(0.0, 180.0, bins + 1)


def _stats(values: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
    """mean, median, histogram counts and n of a 1-D array of angles; mean/median are None when empty."""
    hist = np.histogram(values, bins=edges)[0] if len(values) else np.zeros(len(edges) - 1, dtype=np.int64)
    return {
        "mean": float(values.mean()) if len(values) else None,
        "median": float(np.median(values)) if len(values) else None,
        "hist": [int(c) for c in hist],
        "n": int(len(values)),
    }


def frequent_classes(class_counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Boolean mask of a client's frequent classes: share of its samples >= 1/num_classes (the uniform share)."""
    counts = np.asarray(class_counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return np.zeros(len(counts), dtype=bool)
    return counts / total >= 1.0 / len(counts) - 1e-12


def drift_summary(
    angles: Mapping[int, torch.Tensor | np.ndarray],
    labels: torch.Tensor | np.ndarray,
    client_class_counts: Mapping[int, Sequence[int] | np.ndarray] | np.ndarray,
    bins: int = 90,
) -> dict[str, Any]:
    """Summarise local-global drift angles of one round.

    ``angles[k]`` holds client k's angle (degrees) for every test image, ``labels`` the test labels and
    ``client_class_counts[k]`` client k's training label counts (length num_classes; a mapping or an
    (n_clients, num_classes) matrix). Returns ``{"bin_edges", "pooled", "per_client", "frequent", "rare"}``
    (the ``drift`` entry of angle.json): pooled and frequent/rare pool all (client, image) pairs;
    per-client entries add ``frequent_mean`` / ``rare_mean`` (None when the client has no such class).
    """
    edges = bin_edges(bins)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64)
    pooled, freq_all, rare_all = [], [], []
    per_client: dict[str, Any] = {}
    for k in sorted(angles):
        a = angles[k]
        a = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
        if a.shape != y.shape:
            raise ValueError(f"client {k}: {a.shape[0]} angles for {y.shape[0]} labels")
        is_freq = frequent_classes(client_class_counts[k])[y]
        f, r = a[is_freq], a[~is_freq]
        entry = _stats(a, edges)
        entry["frequent_mean"] = float(f.mean()) if len(f) else None
        entry["rare_mean"] = float(r.mean()) if len(r) else None
        per_client[str(k)] = entry
        pooled.append(a)
        freq_all.append(f)
        rare_all.append(r)

    def cat(xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs) if xs else np.zeros(0)

    fr, ra = _stats(cat(freq_all), edges), _stats(cat(rare_all), edges)
    return {
        "bin_edges": [float(e) for e in edges],
        "pooled": _stats(cat(pooled), edges),
        "per_client": per_client,
        "frequent": {"mean": fr["mean"], "hist": fr["hist"]},
        "rare": {"mean": ra["mean"], "hist": ra["hist"]},
    }


@torch.no_grad()
def class_angle_structure(
    feats: torch.Tensor, labels: torch.Tensor | np.ndarray, max_chunk_elements: int = 1 << 23
) -> dict[str, Any]:
    """Mean pairwise angle (degrees) within and between classes of (N, d) embeddings.

    Per class c: ``intra`` averages θ(x, x') over ordered pairs of distinct images of class c, ``inter``
    over pairs with x in c and x' outside c; ``gap = inter - intra``. Pooled ``intra`` / ``inter``
    average over all same-class / different-class pairs (so larger classes weigh more). Values are None
    where no such pair exists. Rows are processed in chunks of at most ``max_chunk_elements`` angles.
    """
    if feats.dim() != 2:
        raise ValueError(f"feats must be (N, d), got {tuple(feats.shape)}")
    device = feats.device
    z = F.normalize(feats.to(torch.float64), dim=1)
    y = torch.as_tensor(np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels), dtype=torch.long)
    y = y.to(device)
    n = z.shape[0]
    if y.shape != (n,):
        raise ValueError("labels must be 1-D with one entry per feature row")
    classes = torch.unique(y)
    onehot = (y[:, None] == classes[None, :]).to(torch.float64)  # (N, C) over present classes
    sums = torch.zeros(len(classes), len(classes), dtype=torch.float64, device=device)  # angle sums class x class
    chunk = max(1, max_chunk_elements // max(n, 1))
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        ang = (z[s:e] @ z.t()).clamp_(-1.0, 1.0).arccos_().mul_(_RAD2DEG)
        ang[torch.arange(e - s, device=device), torch.arange(s, e, device=device)] = 0.0  # self-pairs
        sums += onehot[s:e].t() @ (ang @ onehot)
    counts = onehot.sum(dim=0)
    intra_sum = torch.diagonal(sums)
    inter_sum = sums.sum(dim=1) - intra_sum
    intra_pairs = counts * (counts - 1)
    inter_pairs = counts * (n - counts)

    def ratio(a: float, b: float) -> float | None:
        return float(a / b) if b > 0 else None

    def gap(inter: float | None, intra: float | None) -> float | None:
        return None if inter is None or intra is None else inter - intra

    per_class = []
    for i, c in enumerate(classes.tolist()):
        intra_c = ratio(float(intra_sum[i]), float(intra_pairs[i]))
        inter_c = ratio(float(inter_sum[i]), float(inter_pairs[i]))
        per_class.append({"class": int(c), "intra": intra_c, "inter": inter_c, "gap": gap(inter_c, intra_c)})
    intra = ratio(float(intra_sum.sum()), float(intra_pairs.sum()))
    inter = ratio(float(inter_sum.sum()), float(inter_pairs.sum()))
    return {"intra": intra, "inter": inter, "gap": gap(inter, intra), "per_class": per_class}


def angle_round(
    global_feats: torch.Tensor,
    labels: torch.Tensor | np.ndarray,
    client_angles: Mapping[int, torch.Tensor | np.ndarray],
    client_class_counts: Mapping[int, Sequence[int] | np.ndarray] | np.ndarray,
    bins: int = 90,
) -> dict[str, Any]:
    """One round's ``angle@v1`` record: ``{"drift": drift_summary(...), "class_structure": ...}``.

    ``global_feats`` are the test features of the global model after the round's aggregation,
    ``client_angles`` the per-client drift angles gathered during the round (see :func:`angles_deg`).
    """
    return {
        "drift": drift_summary(client_angles, labels, client_class_counts, bins),
        "class_structure": class_angle_structure(global_feats, labels),
    }


ANGLE_FILE = "angle.json"


def angle_rounds(cfg: Any) -> list[int]:
    """Rounds analysed by ``angle@v1``: ``eval.angle_rounds`` or, when empty, the final round."""
    return sorted(set(cfg.eval.angle_rounds)) if cfg.eval.angle_rounds else [cfg.federation.rounds]


class AngleTracker:
    """Gathers ``angle@v1`` for the chosen rounds while the federated loop runs.

    ``on_client_trained`` is the trainer's per-client hook: the first call of a chosen round takes the
    test features of the round's starting global model, each call the angles of that client's model to
    them. ``finish_round`` adds the aggregated global model's class structure. Feature passes run in
    eval mode and draw no random numbers, so training is the same with or without the analysis.
    ``results`` (round -> record) travels in the checkpoint, so a resumed run keeps finished rounds.
    """

    def __init__(self, cfg: Any, data: Any, class_counts: np.ndarray, device: torch.device,
                 results: dict[str, Any] | None = None) -> None:
        self.rounds = set(angle_rounds(cfg))
        self.bins = cfg.eval.angle_bins
        self.batch_size = cfg.eval.feature_batch_size
        self.ds = data.dataset
        self.test_x = torch.from_numpy(self.ds.test_x)
        self.class_counts = class_counts
        self.device = device
        self.results: dict[str, Any] = dict(results or {})
        self.hook_seconds = 0.0  # time spent in on_client_trained since the last finish_round
        self._round: int | None = None
        self._global: torch.Tensor | None = None
        self._angles: dict[int, torch.Tensor] = {}

    def _features(self, model: Any) -> torch.Tensor:
        return extract_features(model.encoder, self.test_x, self.ds.mean, self.ds.std, self.batch_size, self.device)

    def on_client_trained(self, r: int, k: int, local_model: Any, global_model: Any) -> None:
        if r not in self.rounds:
            return
        t = time.perf_counter()
        if self._round != r:
            self._round, self._angles = r, {}
            self._global = self._features(global_model)
        assert self._global is not None
        self._angles[k] = angles_deg(self._features(local_model), self._global).cpu()
        self.hook_seconds += time.perf_counter() - t

    def finish_round(self, r: int, global_model: Any) -> dict[str, Any] | None:
        """The round's record (also kept in ``results``), or None when ``r`` is not analysed."""
        if r not in self.rounds:
            return None
        if self._round != r:  # no client trained a step this round (all too small): empty drift
            self._angles = {}
        rec = angle_round(self._features(global_model), self.ds.test_y, self._angles, self.class_counts, self.bins)
        self.results[str(r)] = rec
        self._round, self._global, self._angles = None, None, {}
        return rec

    def document(self) -> dict[str, Any]:
        """The content of ``angle.json``."""
        rounds = dict(sorted(self.results.items(), key=lambda kv: int(kv[0])))
        return {"protocol": ANGLE.id, "rounds": rounds}


class Angle(Protocol):
    """``angle@v1`` during training: the trainer's per-client hook measures drift at the chosen rounds, each
    analysed round adds ``angle_drift_mean``/``angle_gap`` to its record (its feature passes are taken out of
    ``train_seconds`` into ``angle_seconds``) and rewrites ``angle.json``."""

    name = "angle"
    version = "v1"
    metrics = ("drift_mean", "intra", "inter", "gap")
    description = (
        "Benchmark-defined (not from the paper): angles on L2-normalised test-split backbone features; "
        "local-global drift per client (frequent/rare classes) and the global model's intra/inter-class angles."
    )
    compute = staticmethod(angle_round)

    def _tracker(self, run: RunContext) -> AngleTracker:
        return run.state[self.name]

    def start(self, run: RunContext, resumed: Any) -> None:
        counts = run.partition.class_counts(run.data.train_y)
        tracker = AngleTracker(run.cfg, run.data, counts, run.device, resumed or {})
        run.state[self.name] = tracker
        trainer = run.trainer
        trainer.on_client_trained = lambda r, k, local: tracker.on_client_trained(r, k, local, trainer.global_model)

    def after_round(self, run: RunContext, rnd: int, rec: dict[str, Any]) -> None:
        tracker = self._tracker(run)
        ta = time.perf_counter()
        arec = tracker.finish_round(rnd, run.trainer.global_model)
        if arec is not None:
            rec["train_seconds"] = rec["train_seconds"] - tracker.hook_seconds  # drift passes ran inside the round
            rec["angle_drift_mean"] = arec["drift"]["pooled"]["mean"]
            rec["angle_gap"] = arec["class_structure"]["gap"]
            rec["angle_seconds"] = tracker.hook_seconds + time.perf_counter() - ta
            atomic_write_json(run.rd.file(ANGLE_FILE), tracker.document())
        tracker.hook_seconds = 0.0

    def checkpoint_state(self, run: RunContext) -> Any:
        return self._tracker(run).results

    def finish(self, run: RunContext) -> dict[str, Any] | None:
        atomic_write_json(run.rd.file(ANGLE_FILE), self._tracker(run).document())  # also when resumed after the end
        return None


ANGLE = register_protocol(Angle())

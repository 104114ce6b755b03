"""FedProtoCL: a re-implementation of Prototypical Contrastive Learning (PCL, Li et al., ICLR 2021) on top of
FedMoCo (spec §5.6).

Which "ProtoCL" the FedX paper ran, and with which settings, is UNKNOWN: the identification as PCL is
UNVERIFIED and every choice below is the benchmark's.

* Base: ``MoCo`` (query/key networks, per-client queue, symmetric InfoNCE, key reset each round; see
  ``moco.py``). Loss = InfoNCE + ``proto_weight`` · mean over cluster counts of the ProtoNCE term.
* Clustering: per client and per round, in ``prepare_local_training``: the key network's projections
  (eval mode, test transform, no grad, chunks of 512) of all the client's images, L2-normalised, are
  clustered by spherical k-means (cosine assignment, normalised means, k-means++ seeding, ``kmeans_iters``
  iterations, empty clusters re-seeded with the worst-fitted points) for every k in ``num_clusters``
  (capped at the number of images). All randomness comes from torch's global RNG, which the loop seeds
  per client-round. PCL clusters the whole data set every epoch with faiss (L2 k-means, 20 iterations,
  5 restarts); here there is one clustering per client round and no restarts.
* Concentration as in PCL: φ_j = mean_{v∈j} ‖v − μ_j‖ / log(Z_j + α), α = 10, μ_j the cluster mean; clusters
  with ≤ 1 member get the largest φ; φ is clipped to its 10th–90th percentiles and scaled so mean(φ) = τ
  (the InfoNCE temperature, as PCL).
* Assignment (deviation): PCL takes each sample's cluster from the epoch's k-means result by dataset index,
  which this interface does not expose; here a sample's cluster is the prototype nearest (cosine) to the
  key embedding of the same view, computed on the fly.
* ProtoNCE (deviation): PCL samples r negative prototypes; this uses all prototypes (counts are small).
  The term is computed for the queries of both views and averaged, matching the symmetric InfoNCE.
* ``warmup_rounds``: rounds ≤ this train with InfoNCE only (PCL warms up 20 epochs; default 0 = none).
  Before the first k-means of a client round (``prepare_local_training`` not called) the loss is also
  InfoNCE only. Prototypes are plain attributes, not in ``state_dict``: never averaged, never carried over
  to the next client or round.
* Logs: ``loss_local_contrastive`` (the total) plus ``term_infonce`` and ``term_proto``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import proto_nce
from ..registry import METHODS
from .base import ClientState, LossTerms, Views
from .moco import MoCo
from .specs import ProtoCLArgs

PCL_ALPHA = 10.0  # PCL's smoothing constant in the concentration estimate
FEATURE_CHUNK = 512


class Prototypes(NamedTuple):
    centroids: Tensor  # (k, d), L2-normalised
    concentration: Tensor  # (k,), φ_j > 0


def _kmeans_pp_init(x: Tensor, k: int) -> Tensor:
    """k-means++ seeding with the cosine distance 1 − x·c (x rows unit-norm); returns k row indices."""
    n = x.shape[0]
    idx = [int(torch.randint(n, (1,)))]
    dist = (1 - x @ x[idx[0]]).clamp_min(0)
    for _ in range(1, k):
        total = dist.sum()
        probs = dist / total if total > 0 else torch.full_like(dist, 1.0 / n)
        nxt = int(torch.multinomial(probs.cpu(), 1))
        idx.append(nxt)
        dist = torch.minimum(dist, (1 - x @ x[nxt]).clamp_min(0))
    return torch.tensor(idx, device=x.device)


def spherical_kmeans(x: Tensor, k: int, iters: int) -> tuple[Tensor, Tensor]:
    """Cosine k-means on unit-norm rows ``x``; returns (L2-normalised centroids (k, d), assignment (n,))."""
    n = x.shape[0]
    k = min(k, n)
    c = x[_kmeans_pp_init(x, k)].clone()
    for _ in range(iters):
        sim = x @ c.t()
        assign = sim.argmax(dim=1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        empty = (counts == 0).nonzero().flatten()
        c = F.normalize(sums, dim=1)
        if empty.numel():  # re-seed empty clusters with the points farthest from their centroid
            worst = sim.gather(1, assign[:, None]).squeeze(1).argsort()[: empty.numel()]
            c[empty] = x[worst]
    assign = (x @ c.t()).argmax(dim=1)
    return c, assign


def pcl_concentration(x: Tensor, assign: Tensor, k: int, temperature: float) -> Tensor:
    """PCL's φ per cluster (module docstring): mean distance to the cluster mean over log(Z + α), clipped to
    the 10th–90th percentiles and rescaled to mean τ."""
    counts = torch.bincount(assign, minlength=k).to(x.dtype)
    means = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, assign, x)
    means = means / counts.clamp_min(1)[:, None]
    dist = torch.linalg.vector_norm(x - means[assign], dim=1)
    dist_sum = torch.zeros(k, dtype=x.dtype, device=x.device).index_add_(0, assign, dist)
    mean_dist = dist_sum / counts.clamp_min(1)
    phi = mean_dist / torch.log(counts + PCL_ALPHA)
    big = counts > 1
    if not bool(big.any()) or float(phi[big].max()) <= 0:
        return torch.full((k,), temperature, dtype=x.dtype, device=x.device)
    phi = torch.where(big, phi, phi[big].max())
    phi = phi.clamp(float(torch.quantile(phi, 0.1)), float(torch.quantile(phi, 0.9)))
    return temperature * phi / phi.mean()


def nearest_prototype(k: Tensor, centroids: Tensor) -> Tensor:
    """Index of the cosine-nearest prototype for every row of ``k``."""
    return (F.normalize(k, dim=1) @ centroids.t()).argmax(dim=1)


@METHODS.register("protocl")
class ProtoCL(MoCo):
    """FedProtoCL; every choice is listed in the module docstring."""

    name = "protocl"
    Args = ProtoCLArgs

    def __init__(
        self, backbone: nn.Module, args: ProtoCLArgs, proj_hidden: int = 256, proj_dim: int = 256
    ) -> None:
        super().__init__(backbone, args, proj_hidden, proj_dim)
        self.prototypes: list[Prototypes] = []  # plain attribute: not in state_dict
        self._round: int | None = None  # the current client round (None: unknown, never a warm-up round)

    def on_round_start(self, round_idx: int, client_state: ClientState | None) -> None:
        super().on_round_start(round_idx, client_state)
        self.prototypes = []  # never reuse another client's (or round's) clusters
        self._round = round_idx

    @torch.no_grad()
    def key_features(self, images: Tensor, transform: Callable[[Tensor], Tensor]) -> Tensor:
        """L2-normalised key-network projections of uint8 ``images`` (eval mode, in chunks)."""
        nets = (self.key_encoder, self.key_projector)
        modes = [m.training for m in nets]
        for m in nets:
            m.eval()
        try:
            out = [
                self.key_project(transform(images[i : i + FEATURE_CHUNK]))
                for i in range(0, images.shape[0], FEATURE_CHUNK)
            ]
        finally:
            for m, mode in zip(nets, modes):
                m.train(mode)
        return F.normalize(torch.cat(out, dim=0), dim=1)

    def prepare_local_training(self, images: Tensor, transform: Callable[[Tensor], Tensor]) -> None:
        self.prototypes = []
        warming_up = self._round is not None and self._round <= self.args.warmup_rounds
        if warming_up or images.shape[0] < 2:
            return
        feats = self.key_features(images, transform)
        self.prototypes = self.cluster(feats)

    def cluster(self, feats: Tensor) -> list[Prototypes]:
        """One spherical k-means + concentration per entry of ``num_clusters`` on unit-norm ``feats``."""
        out = []
        for k in self.args.num_clusters:
            k = min(k, feats.shape[0])
            centroids, assign = spherical_kmeans(feats, k, self.args.kmeans_iters)
            phi = pcl_concentration(feats, assign, k, self.args.temperature)
            out.append(Prototypes(centroids, phi))
        return out

    def proto_term(self, q1: Tensor, q2: Tensor, k1: Tensor, k2: Tensor) -> Tensor:
        """Mean over clusterings of ½[ProtoNCE(q1 | k1's cluster) + ProtoNCE(q2 | k2's cluster)]."""
        terms = []
        for p in self.prototypes:
            a1 = nearest_prototype(k1, p.centroids)
            a2 = nearest_prototype(k2, p.centroids)
            terms.append(
                0.5
                * (
                    proto_nce(q1, p.centroids, p.concentration, a1)
                    + proto_nce(q2, p.centroids, p.concentration, a2)
                )
            )
        return torch.stack(terms).mean()

    def compute_loss(self, v: Views) -> LossTerms:
        k1, k2 = self._keys(v)
        nce = self._info_nce(v.z1, v.z2, k1, k2)
        logs = {"term_infonce": nce.detach()}
        loss = nce
        if self.prototypes:
            proto = self.proto_term(v.z1, v.z2, k1, k2)
            loss = nce + self.args.proto_weight * proto
            logs["term_proto"] = proto.detach()
        else:
            logs["term_proto"] = torch.zeros((), device=nce.device)
        logs["loss_local_contrastive"] = loss.detach()
        return loss, logs

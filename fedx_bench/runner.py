"""Execute one run end to end: data → partition → method (+FedX) → federated loop → evaluations → store.

A run is resumable: a checkpoint is written atomically after every round (the previous one is kept as the
fallback), and a run whose result files say done and agree is skipped. A run's CPU thread count is part of
what it is: 1 by default, recorded in ``spec.json`` and reused on resume, so numbers never depend on how many
runs share the machine.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import RunConfig
from .data import ArrayDataset, load_dataset
from .data.augment import build_augment, normalize
from .data.datasets import resolve_root
from .errors import UserError
from .evaluation import (
    PROTOCOL_VERSIONS,
    angle_round,
    angles_deg,
    balanced_subset,
    extract_features,
    knn_accuracy,
    linear_probe,
    semi_supervised_finetune,
)
from .evaluation.semi_supervised import indices_sha256
from .federated import FederatedTrainer, derive_seed, resolve_device
from .methods import Method, resolve_method, wrap_fedx
from .models import build_backbone
from .partition import PARTITION_VERSION, Partition, dirichlet_split, iid_split, stratified_subsample
from .progress import Progress
from .provenance import portable_paths
from .setting import setting_id
from .store import (
    CHECKPOINT,
    CHECKPOINT_PREV,
    RunDir,
    RunStore,
    atomic_write_json,
    environment_record,
    inspect_run,
    one_line_error,
    read_json,
)
from .tracking import log_record

DEFAULT_THREADS = 1  # intra-op CPU threads of a run unless asked otherwise (--threads-per-run)
ANGLE_FILE = "angle.json"


def build_method(cfg: RunConfig, in_channels: int) -> Method:
    """Build the (optionally FedX-wrapped) method for a run. Seeds torch first so that the backbone's
    initial weights depend only on the seed and backbone, not on the method (same random-init encoder). The
    method's module is imported (``resolve_method``) before seeding, so nothing else draws in between."""
    cls = resolve_method(cfg.method)
    args = cls.parse_args(cfg.method_args)
    torch.manual_seed(cfg.seed)
    backbone = build_backbone(cfg.model.backbone, in_channels, cfg.model.width)
    base = cls(backbone, args, cfg.model.proj_hidden, cfg.model.proj_dim)
    return wrap_fedx(base, cfg.fedx)


REFERENCE_AUGMENT = {"cifar10": "reference-cifar", "svhn": "reference-svhn", "fmnist": "reference-cifar"}


def augment_name(cfg: RunConfig) -> str:
    """``reference`` resolves per dataset (F-MNIST has none in the reference: crop+flip is our choice)."""
    a = cfg.data.augment
    return REFERENCE_AUGMENT.get(cfg.data.name, "reference-cifar") if a == "reference" else a


def protocol_versions(cfg: RunConfig) -> dict[str, str]:
    """Versions of every protocol a run's numbers depend on (stored in spec.json, printed by reports)."""
    out = {p: PROTOCOL_VERSIONS[p] for p in cfg.eval.protocols}
    out["partition"] = PARTITION_VERSION
    return out


@dataclass
class PreparedData:
    dataset: ArrayDataset
    train_x: np.ndarray  # after data.fraction subsampling (what clients hold)
    train_y: np.ndarray
    subset_indices: np.ndarray | None
    _on_device: dict[str, tuple[torch.Tensor, ...]] = field(default_factory=dict)

    def eval_tensors(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """(train_x, train_y, test_x, test_y) of the evaluation splits on ``device``, uploaded once per run
        rather than at every evaluation."""
        key = str(device)
        if key not in self._on_device:
            ds = self.dataset
            self._on_device[key] = tuple(
                torch.from_numpy(a).to(device) for a in (ds.train_x, ds.train_y, ds.test_x, ds.test_y)
            )
        return self._on_device[key]


class DatasetCache:
    """Loads each distinct dataset once per process (a suite has many runs on the same data)."""

    def __init__(self, data_root: str | None = None) -> None:
        self.data_root = data_root
        self._cache: dict[tuple[Any, ...], ArrayDataset] = {}

    def get(self, cfg: RunConfig) -> ArrayDataset:
        d = cfg.data
        root = d.root or self.data_root
        key = (d.name, d.source, root, d.download, d.verify_checksums, d.grayscale, d.train_limit)
        if key not in self._cache:
            self._cache[key] = load_dataset(
                d.name, root=root, source=d.source, download=d.download, verify_checksums=d.verify_checksums,
                grayscale=d.grayscale, train_limit=d.train_limit,
            )
        return self._cache[key]


def prepare_data(cfg: RunConfig, cache: DatasetCache) -> PreparedData:
    ds = cache.get(cfg)
    if cfg.data.fraction < 1.0:
        sub = stratified_subsample(ds.train_y, cfg.data.fraction, cfg.seed)
        return PreparedData(ds, ds.train_x[sub], ds.train_y[sub], sub)
    return PreparedData(ds, ds.train_x, ds.train_y, None)


def make_partition(cfg: RunConfig, labels: np.ndarray, num_classes: int) -> Partition:
    f = cfg.federation
    seed = cfg.seed if f.partition_seed is None else f.partition_seed
    if f.partition == "iid":
        return iid_split(labels, f.clients, seed, num_classes=num_classes)
    return dirichlet_split(labels, f.clients, f.beta, seed, min_size=f.min_size, num_classes=num_classes)


def evaluate(model: torch.nn.Module, data: PreparedData, cfg: RunConfig, device: torch.device, round_idx: int
             ) -> dict[str, float]:
    """All configured protocols on the global encoder: probe trained on the whole (limited) training split."""
    e = cfg.eval
    ds = data.dataset
    out: dict[str, float] = {}
    if "linear_probe" not in e.protocols and "knn" not in e.protocols:
        return out  # semi_supervised / angle run elsewhere: no per-round feature pass needed
    enc = model.encoder
    xtr_u8, ytr, xte_u8, yte = data.eval_tensors(device)
    tr = extract_features(enc, xtr_u8, ds.mean, ds.std, e.feature_batch_size, device)
    te = extract_features(enc, xte_u8, ds.mean, ds.std, e.feature_batch_size, device)
    if "linear_probe" in e.protocols:
        r = linear_probe(
            tr, ytr, te, yte, epochs=e.probe_epochs, lr=e.probe_lr, weight_decay=e.probe_weight_decay,
            batch_size=e.probe_batch_size, seed=derive_seed(cfg.seed, round_idx, 7) % (2**31),
            num_classes=ds.num_classes, device=device,
        )
        out["linear_probe_top1"] = float(r["top1"])
        out["linear_probe_top5"] = float(r["top5"])
    if "knn" in e.protocols:
        r = knn_accuracy(tr, ytr, te, yte, k=e.knn_k, temperature=e.knn_temperature, num_classes=ds.num_classes)
        out["knn_top1"] = float(r["top1"])
    return out


def semi_supervised_eval(model: Method, data: PreparedData, cfg: RunConfig, device: torch.device
                         ) -> dict[str, Any]:
    """``semi_supervised@v1`` on the final global encoder: one fine-tune per labelled fraction.

    The labelled subsets come from the whole (train_limit-capped) training split, like the linear
    probe's, and use the recorded seed (``eval.semi_seed``, default the run seed) both for the subset and
    for the fine-tune's shuffles/augmentations; with one seed the 1% subset is contained in the 10% one.
    The augmentation is the run's training pipeline (``data.augment``, resolved per dataset).
    """
    e = cfg.eval
    ds = data.dataset
    seed = cfg.seed if e.semi_seed is None else e.semi_seed
    augment = build_augment(augment_name(cfg), ds.mean, ds.std, ds.train_x.shape[1])
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
    return {"protocol": f"semi_supervised@{PROTOCOL_VERSIONS['semi_supervised']}", "round": cfg.federation.rounds,
            "seed": seed, "results": results}


def angle_rounds(cfg: RunConfig) -> list[int]:
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

    def __init__(self, cfg: RunConfig, data: PreparedData, class_counts: np.ndarray, device: torch.device,
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

    def _features(self, model: Method) -> torch.Tensor:
        return extract_features(model.encoder, self.test_x, self.ds.mean, self.ds.std, self.batch_size, self.device)

    def on_client_trained(self, r: int, k: int, local_model: Method, global_model: Method) -> None:
        if r not in self.rounds:
            return
        t = time.perf_counter()
        if self._round != r:
            self._round, self._angles = r, {}
            self._global = self._features(global_model)
        assert self._global is not None
        self._angles[k] = angles_deg(self._features(local_model), self._global).cpu()
        self.hook_seconds += time.perf_counter() - t

    def finish_round(self, r: int, global_model: Method) -> dict[str, Any] | None:
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
        return {"protocol": f"angle@{PROTOCOL_VERSIONS['angle']}", "rounds": rounds}


def summarise(records: list[dict[str, Any]], cfg: RunConfig) -> dict[str, Any]:
    """Last / Best / init per metric. Best is the max over evaluated training rounds (test-set-selected,
    as in the reference); init is the random-init encoder (round 0)."""
    summary: dict[str, Any] = {}
    metrics = {"linear_probe_top1": "linear_probe", "linear_probe_top5": "linear_probe", "knn_top1": "knn"}
    for key, proto in metrics.items():
        if proto not in cfg.eval.protocols:
            continue
        trained = [(r["round"], r[key]) for r in records if r["round"] > 0 and key in r]
        init = [r[key] for r in records if r["round"] == 0 and key in r]
        entry: dict[str, Any] = {"protocol": f"{proto}@{PROTOCOL_VERSIONS[proto]}"}
        if init:
            entry["init"] = init[0]
        if trained:
            best_round, best = max(trained, key=lambda t: t[1])
            entry.update(last=trained[-1][1], last_round=trained[-1][0], best=best, best_round=best_round)
        summary[key] = entry
    return summary


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class RunOutcome:
    run_id: str
    label: str
    state: str  # done | skipped | failed
    summary: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    error: str | None = None
    note: str | None = None  # e.g. "finished by another invocation"


def recorded_threads(rd: RunDir) -> int | None:
    """The CPU thread count an unfinished run started with: ``spec.json``'s ``cpu_threads``, else (runs stored
    before it was recorded) ``env.json``'s ``device.torch_threads``; None when the run has not started."""
    spec = read_json(rd.file("spec.json"), {})
    if isinstance(spec, dict) and isinstance(spec.get("cpu_threads"), int):
        return int(spec["cpu_threads"])
    env = read_json(rd.file("env.json"), {})
    t = ((env or {}).get("device") or {}).get("torch_threads") if isinstance(env, dict) else None
    return int(t) if isinstance(t, int) and t > 0 else None


def run_threads(rd: RunDir, requested: int | None) -> tuple[int, str | None]:
    """(threads to use, warning): a resumed run keeps the count it started with, whatever is asked now."""
    want = requested or DEFAULT_THREADS
    resuming = rd.file(CHECKPOINT).exists() or rd.file(CHECKPOINT_PREV).exists()
    rec = recorded_threads(rd) if resuming else None
    if rec is not None and rec != want:
        return rec, (f"resuming with the {rec} CPU thread(s) this run started with (asked for {want}): "
                     "a run's numbers depend on its thread count")
    return want, None


def _warn(rd: RunDir, label: str, progress: Progress, msg: str) -> None:
    """A warning the user must see: on the progress stream (or stderr) and in ``status.json["warnings"]`` (which
    the parallel progress view prints)."""
    line = f"[{label}] warning: {msg}"
    if progress.mode == "quiet":
        print(f"fedx-bench: {line}", file=sys.stderr, flush=True)
    else:
        progress.log(line)
    with contextlib.suppress(OSError):
        rd.set_status(rd.status.get("state", "pending"), warnings=[*rd.status.get("warnings", []), msg])


def execute_run(
    cfg: RunConfig,
    results_dir: str | Path,
    cache: DatasetCache | None = None,
    progress: Progress | None = None,
    suite: str | None = None,
    stop_after_round: int | None = None,
    threads: int | None = None,
) -> RunOutcome:
    """Run (or resume, or skip) one configuration, writing everything into the run store.

    ``threads``: intra-op CPU threads (default 1; a resumed run uses the count recorded when it started), set
    for the run and restored afterwards. ``stop_after_round`` exists for tests of resume: the run stops cleanly
    after that round, leaving its checkpoint as a crash would.
    """
    cache = cache or DatasetCache()
    progress = progress or Progress("quiet")
    store = RunStore(results_dir)
    rd = store.run(cfg.run_id)
    state, problem = inspect_run(rd.path)
    if state == "done":
        return RunOutcome(cfg.run_id, cfg.label, "skipped", read_json(rd.file("eval.json"), {}).get("metrics", {}))
    if state == "damaged" and rd.status.get("state") == "done":
        _warn(rd, cfg.label, progress, f"recorded done but {problem} ({rd.path}); re-running it")
    t_start = time.perf_counter()
    n_threads, why = run_threads(rd, threads)
    if why:
        _warn(rd, cfg.label, progress, why)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        rd.clean_temp()
        return _execute(cfg, rd, cache, progress, suite, stop_after_round, t_start, n_threads)
    except UserError as e:
        with contextlib.suppress(OSError):
            if rd.path.is_dir():
                rd.set_status("failed", error=one_line_error(e), progress=None)
        raise
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            rd.set_status("interrupted", error="KeyboardInterrupt", progress=None)
        raise
    except Exception as e:  # noqa: BLE001 - a failed run is recorded and the suite goes on
        err = one_line_error(e)
        tb = traceback.format_exc()
        with contextlib.suppress(OSError):  # disk full / read-only: the one-line error still reaches the caller
            rd.path.mkdir(parents=True, exist_ok=True)
            rd.file("traceback.txt").write_text(tb)
        with contextlib.suppress(OSError):
            rd.set_status("failed", error=err, progress=None)
        progress.run_end("FAILED", err, label=cfg.label)
        return RunOutcome(cfg.run_id, cfg.label, "failed", {}, time.perf_counter() - t_start, err)
    finally:
        torch.set_num_threads(threads_before)


def _resume_state(rd: RunDir, label: str, progress: Progress) -> dict[str, Any] | None:
    return rd.load_checkpoint(warn=lambda msg: _warn(rd, label, progress, msg))


def _execute(
    cfg: RunConfig, rd: RunDir, cache: DatasetCache, progress: Progress, suite: str | None,
    stop_after_round: int | None, t_start: float, n_threads: int = DEFAULT_THREADS,
) -> RunOutcome:
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cudnn.deterministic = cfg.deterministic
    data = prepare_data(cfg, cache)
    ds = data.dataset
    partition = make_partition(cfg, data.train_y, ds.num_classes)
    spec = {
        "run_id": cfg.run_id,
        "label": cfg.label,
        "config": cfg.to_dict(),
        "identity_hash": cfg.run_id,
        "setting_id": setting_id(cfg.to_dict()),
        "seed": cfg.seed,
        "suite": suite,
        "protocols": protocol_versions(cfg),
        "augment": augment_name(cfg),
        "dataset": portable_paths(ds.provenance, resolve_root(cfg.data.root)),
        "partition_sha256": partition.sha256,
        "subset_sha256": None if data.subset_indices is None else _hash_indices(data.subset_indices),
        "cpu_threads": n_threads,  # not in the run id; enforced on resume (see run_threads)
    }
    ck = _resume_state(rd, cfg.label, progress)  # before spec.json is rewritten: it holds the recorded threads
    atomic_write_json(rd.file("spec.json"), spec)
    atomic_write_json(rd.file("env.json"), environment_record(device))
    atomic_write_json(rd.file("partition.json"), partition.to_json(data.train_y))
    model = build_method(cfg, ds.channels)
    augment = build_augment(augment_name(cfg), ds.mean, ds.std, ds.train_x.shape[1])
    trainer = FederatedTrainer(cfg, model, torch.from_numpy(data.train_x), partition.client_indices, augment, device,
                               transform=lambda x: normalize(x, ds.mean, ds.std))
    records: list[dict[str, Any]] = []
    elapsed_before = 0.0
    angle_done: dict[str, Any] = {}
    if ck is not None:
        trainer.load_state_dict(ck["trainer"])
        records = ck["records"]
        elapsed_before = ck.get("elapsed", 0.0)
        angle_done = ck.get("angle", {})
    tracker: AngleTracker | None = None
    if "angle" in cfg.eval.protocols:
        tracker = AngleTracker(cfg, data, partition.class_counts(data.train_y), device, angle_done)
        hook = tracker.on_client_trained
        trainer.on_client_trained = lambda r, k, local: hook(r, k, local, trainer.global_model)
    rounds = cfg.federation.rounds
    rd.set_status("running", round=trainer.round, start_round=trainer.round, rounds=rounds, device=str(device),
                  started=time.time(), error=None, cpu_threads=n_threads)
    progress.run_start(cfg.label, rounds, trainer.round)
    start_round = trainer.round

    def in_round(info: dict[str, Any]) -> None:
        progress.within_round(info)
        rd.set_status("running", progress=info)

    trainer.on_progress = in_round
    t0 = time.perf_counter() - elapsed_before
    if cfg.eval.at_init and not any(r["round"] == 0 for r in records):
        te = time.perf_counter()
        m = evaluate(trainer.global_model, data, cfg, device, 0)
        now = time.perf_counter()
        records.append({"round": 0, **m, "eval_seconds": now - te, "wall_seconds": now - t0})
        rd.write_metrics(records)
        log_record(cfg, rd.path, records[-1])
    while trainer.round < rounds:
        res = trainer.run_round()
        r = res.round
        rec: dict[str, Any] = {"round": r, "losses": res.losses, "steps": res.steps, "clients": res.clients,
                               "train_seconds": res.train_seconds, **res.extra}
        if tracker is not None:
            ta = time.perf_counter()
            arec = tracker.finish_round(r, trainer.global_model)
            if arec is not None:
                rec["train_seconds"] = res.train_seconds - tracker.hook_seconds  # drift passes ran inside the round
                rec["angle_drift_mean"] = arec["drift"]["pooled"]["mean"]
                rec["angle_gap"] = arec["class_structure"]["gap"]
                rec["angle_seconds"] = tracker.hook_seconds + time.perf_counter() - ta
                atomic_write_json(rd.file(ANGLE_FILE), tracker.document())
            tracker.hook_seconds = 0.0
        if r % cfg.eval.interval == 0 or r == rounds:
            te = time.perf_counter()
            rec.update(evaluate(trainer.global_model, data, cfg, device, r))
            rec["eval_seconds"] = time.perf_counter() - te
        rec["wall_seconds"] = time.perf_counter() - t0
        records.append(rec)
        rd.write_metrics(records)
        log_record(cfg, rd.path, rec)  # TensorBoard, when asked for (fedx_bench.tracking)
        rd.save_checkpoint({"run_id": cfg.run_id, "trainer": trainer.state_dict(), "records": records,
                            "elapsed": rec["wall_seconds"], "angle": tracker.results if tracker is not None else {}})
        done_now = r - start_round
        eta = (time.perf_counter() - t0 - elapsed_before) / max(done_now, 1) * (rounds - r)
        last = {k: v for k, v in rec.items() if k in ("linear_probe_top1", "knn_top1")}
        last["loss"] = res.losses.get("loss")
        rd.set_status("running", round=r, elapsed_seconds=rec["wall_seconds"], eta_seconds=eta, last_metrics=last,
                      progress=None)
        shown = {"loss": res.losses.get("loss", float("nan"))}
        for k in ("linear_probe_top1", "knn_top1"):
            if k in rec:
                shown[k.replace("_top1", "")] = rec[k]
        progress.round_end(r, shown)
        if stop_after_round is not None and r >= stop_after_round and r < rounds:
            return RunOutcome(cfg.run_id, cfg.label, "stopped", {}, time.perf_counter() - t_start)
    summary = summarise(records, cfg)
    extra: dict[str, Any] = {}
    if tracker is not None:
        atomic_write_json(rd.file(ANGLE_FILE), tracker.document())  # also when resumed after the last round
    if "semi_supervised" in cfg.eval.protocols:
        rd.set_status("running", progress={"phase": "semi_supervised"})
        ts = time.perf_counter()
        extra["semi_supervised"] = semi_supervised_eval(trainer.global_model, data, cfg, device)
        if cfg.eval.at_init:  # the floor: the same fine-tune from the random-init encoder (rebuilt from the seed)
            init_model = build_method(cfg, ds.channels).to(device)
            extra["semi_supervised"]["init"] = semi_supervised_eval(init_model, data, cfg, device)["results"]
        extra["semi_supervised"]["wall_seconds"] = time.perf_counter() - ts
        rd.set_status("running", progress=None)
    wall = time.perf_counter() - t0
    peak = {"peak_rss_mb": _peak_rss_mb()}
    if device.type == "cuda":
        peak["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    atomic_write_json(rd.file("eval.json"), {"metrics": summary, "rounds": rounds, "wall_seconds": wall, **peak,
                                             "protocols": protocol_versions(cfg), **extra})
    rd.set_status("done", round=rounds, wall_seconds=wall)
    rd.drop_checkpoints()
    lp = summary.get("linear_probe_top1", {})
    progress.run_end("done", f"probe last={lp.get('last', float('nan')):.2f} best={lp.get('best', float('nan')):.2f}"
                     if lp else "")
    return RunOutcome(cfg.run_id, cfg.label, "done", summary, time.perf_counter() - t_start)


def _hash_indices(ix: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.asarray(ix, dtype=np.int64).tobytes()).hexdigest()

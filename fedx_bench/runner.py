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

from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig
from .data import ArrayDataset, load_dataset
from .data.augment import build_augment, normalize
from .data.datasets import resolve_root
from .environment import environment_record
from .errors import UserError
from .evaluation import FINAL, EvalContext, Protocol, RunContext, extract_features, get_protocol, indices_sha256
from .evaluation import protocol_versions as _protocol_versions
from .federated import FederatedTrainer, resolve_device
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
    inspect_run,
    one_line_error,
    read_json,
)
from .tracking import log_record

DEFAULT_THREADS = 1  # intra-op CPU threads of a run unless asked otherwise (--threads-per-run)


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
    out = _protocol_versions(cfg.eval.protocols)
    out["partition"] = PARTITION_VERSION
    return out


def run_protocols(cfg: RunConfig) -> list[Protocol]:
    """The registry entries of ``cfg.eval.protocols``, in the config's order."""
    return [get_protocol(name) for name in cfg.eval.protocols]


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
    """Every configured per-round protocol on the global encoder at ``round_idx``; they share one feature pass
    (taken only when one of them asks for features)."""
    ctx = EvalContext(cfg, data, device, model, round_idx, extract=extract_features)
    out: dict[str, float] = {}
    for p in run_protocols(cfg):
        out.update(p.evaluate(ctx))
    return out


def summarise(records: list[dict[str, Any]], cfg: RunConfig) -> dict[str, Any]:
    """``eval.json["metrics"]``: each protocol's summary of the per-round records (Last / Best / init)."""
    summary: dict[str, Any] = {}
    for p in run_protocols(cfg):
        summary.update(p.summary(records))
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
    return load_checkpoint(rd, warn=lambda msg: _warn(rd, label, progress, msg))


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
        "subset_sha256": None if data.subset_indices is None else indices_sha256(data.subset_indices),
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
    if ck is not None:
        trainer.load_state_dict(ck["trainer"])
        records = ck["records"]
        elapsed_before = ck.get("elapsed", 0.0)
    protocols = run_protocols(cfg)
    run = RunContext(cfg, data, device, trainer, rd, augment=augment_name(cfg), partition=partition,
                     init_model=lambda: build_method(cfg, ds.channels))
    for p in protocols:  # a protocol's per-run state travels in the checkpoint under its name
        p.start(run, None if ck is None else ck.get(p.name))
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
        for p in protocols:
            p.after_round(run, r, rec)
        if r % cfg.eval.interval == 0 or r == rounds:
            te = time.perf_counter()
            rec.update(evaluate(trainer.global_model, data, cfg, device, r))
            rec["eval_seconds"] = time.perf_counter() - te
        rec["wall_seconds"] = time.perf_counter() - t0
        records.append(rec)
        rd.write_metrics(records)
        log_record(cfg, rd.path, rec)  # TensorBoard, when asked for (fedx_bench.tracking)
        states = {p.name: st for p in protocols if (st := p.checkpoint_state(run)) is not None}
        save_checkpoint(rd, {"run_id": cfg.run_id, "trainer": trainer.state_dict(), "records": records,
                             "elapsed": rec["wall_seconds"], **states})
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
    for p in protocols:  # a final protocol's entry of eval.json carries its wall time; status shows its phase
        if p.schedule == FINAL:
            rd.set_status("running", progress={"phase": p.name})
        ts = time.perf_counter()
        entry = p.finish(run)
        if entry is not None:
            extra[p.name] = {**entry, "wall_seconds": time.perf_counter() - ts}
        if p.schedule == FINAL:
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


"""GPU acceptance in one call: correctness, step speed and MFU, paper-scale projection, scheduler on a GPU.

Usage (from the repository root; no network, no package beyond what the project installs)::

    python3 benchmarks/gpu_acceptance.py --out DIR [--budget-s 480] [--peak-tflops T]
    python3 benchmarks/gpu_acceptance.py --cpu-smoke --out DIR   # every stage at toy size on the CPU

A GPU is lent here briefly, so everything the paper-scale suites need from one is checked by this one
script under a hard time budget (``--budget-s``, default 8 minutes). Each stage has its own share of the
budget (unused time passes on to the next stage); a stage whose share is spent is skipped with a note,
and a stage that outruns its share is stopped at its deadline (SIGALRM) with what it measured so far.

1. **correctness**: a short FedX run end to end on the device through ``fedx_bench.api.run_suite`` (paper
   ResNet-18, 2 rounds, 3 clients, the embedded CIFAR-10 subset, bf16 + channels_last): finishes, every
   logged loss finite, linear probe above the random-init encoder; the first local step of the same run
   (same init, same batch) on CPU and on the device agree in fp32, and bf16 autocast vs fp32 on the same
   batch, within the tolerances below.
2. **speed**: ms/step, images/s and model-FLOP utilisation of the FedX step and the base step (FedSimCLR;
   batch 64 + 64, ResNet-18) in fp32, bf16, bf16 + channels_last and bf16 + channels_last + torch.compile.
   The step, FLOP counter and timer are ``benchmarks/gpu_step.py``'s; the card's peak comes from a table
   of known cards or ``--peak-tflops``.
3. **projection**: one client's local epoch at paper size (5,000 images generated on the device, the real
   ``FederatedTrainer``), the probe on 50,000 x 512 features for 100 epochs, feature extraction and kNN,
   each method's step cost relative to FedSimCLR; from these the wall time of one paper CIFAR-10 run and of
   the 90 runs of ``suites/table1.yaml`` on 1 and on 8 such GPUs, against the targets.
4. **scheduler**: 4 tiny runs with ``devices=0, runs_per_device=2, jobs=2`` through ``api.run_suite``:
   each run's device as recorded (``env.json``, ``status.json``), makespan vs the sum of single-run times,
   and the most runs on one device at once (from the runs' recorded start and end times).

Writes ``gpu_acceptance.json`` (rewritten after every stage) and ``gpu_acceptance.md`` into ``--out``.
Without CUDA (and without ``--cpu-smoke``) it prints ``skip: CUDA not available`` and exits 0. Exit 1
when a stage raised (its traceback is in the JSON); failed checks are reported, not an exit code.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

T_START = time.perf_counter()  # the budget counts from here: imports and data loading included

REPO = Path(__file__).resolve().parents[1]
if (REPO / "fedx_bench").is_dir() and str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # this checkout's package, also where it is not pip-installed (the GPU machine)

import gpu_step  # noqa: E402  (sibling script: the step, FLOP counter and timer are its own)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from fedx_bench import api  # noqa: E402
from fedx_bench.config import load_suite, run_config_from_dict  # noqa: E402
from fedx_bench.data import load_dataset  # noqa: E402
from fedx_bench.data.augment import build_augment, normalize  # noqa: E402
from fedx_bench.environment import environment_record  # noqa: E402
from fedx_bench.evaluation import extract_features, knn_accuracy, linear_probe  # noqa: E402
from fedx_bench.federated import FederatedTrainer  # noqa: E402
from fedx_bench.runner import build_method  # noqa: E402
from fedx_bench.store import RunStore, read_json  # noqa: E402

JSON_NAME, MD_NAME = "gpu_acceptance.json", "gpu_acceptance.md"

# (key, title, share of the budget). Shares add up to 1; unused time passes on to the next stage.
STAGES: list[tuple[str, str, float]] = [
    ("correctness", "1. correctness on the device", 0.20),
    ("speed", "2. speed of the paper step", 0.40),
    ("projection", "3. paper-scale projection", 0.20),
    ("scheduler", "4. scheduler on a GPU", 0.20),
]
MIN_STAGE_S = 5.0  # a stage with less than this left of its share is skipped
COMPILE_MIN_S = 60.0  # torch.compile of ResNet-18 forward+backward takes tens of seconds: not started with less

# Stated tolerances (relative). Strict fp32 = TF32 off in cuDNN and matmul; "as runs" = PyTorch's defaults,
# under which cuDNN uses TF32 for convolutions (10-bit mantissa), as every fp32 run of the suites does.
FP32_LOSS_RTOL, FP32_GRAD_RTOL = 1e-4, 1e-3
TF32_LOSS_RTOL, TF32_GRAD_RTOL = 1e-2, 5e-2
BF16_LOSS_RTOL = 2e-2

# Targets of the issue (paper scale, GPU only).
TARGET_MFU_PCT = 40.0  # FedX step, bf16
TARGET_RUN_S = 1.5 * 3600  # one paper CIFAR-10 run on one H100-class card
TARGET_TABLE1_8_S = 8 * 3600  # Table 1 (90 runs) on 8 such cards

# Dense peaks in TFLOP/s as (bf16, tf32, fp32 without tensor cores); first substring match wins. gpu_step's
# table (H100 PCIe/SXM, H200, GH200, A100) is used as is, with more cards around it. None: known, no peak.
PEAKS: list[tuple[str, tuple[float, float, float] | None]] = [
    ("H100 NVL", (835.5, 417.5, 60.0)),
    *gpu_step.PEAKS,
    ("L40S", (362.1, 183.0, 91.6)),
    ("L4", (121.0, 60.0, 30.3)),
    ("A10G", None),  # not the A10's clocks: pass --peak-tflops
    ("A10", (125.0, 62.5, 31.2)),
]

# Training / test split sizes of Table 1's datasets (F-MNIST's 28x28 images are costed as 32x32: an upper bound).
DATASET_SIZES = {"cifar10": (50_000, 10_000), "svhn": (73_257, 26_032), "fmnist": (60_000, 10_000)}
TABLE1_METHODS = ("simclr", "moco", "byol", "protocl", "fedu")


def find_peak(name: str) -> tuple[float, float, float] | None:
    """The card's dense peaks from :data:`PEAKS` (None when unknown)."""
    for key, peak in PEAKS:
        if key.lower() in name.lower():
            return peak
    return None


# --------------------------------------------------------------------------------------------------
# Sizes: the paper's on a GPU, toy ones for --cpu-smoke
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    backbone: str = "resnet18"
    width: int | None = None
    batch: int = 64
    train_limit: int | None = None  # stage 1: the whole embedded subset (8,000 / 2,000)
    local_epochs: int = 5  # stage 1: 2 rounds x 5 epochs x 3 clients = ~1,250 steps, enough to beat the random init
    probe_epochs: int = 100
    steps: int = 50  # stage 2 timed steps per measurement
    warmup: int = 10
    epoch_images: int = 5_000  # stage 3
    probe_n: int = 50_000
    probe_d: int = 512
    probe_test: int = 10_000
    feature_images: int = 10_000
    method_steps: int = 20


PAPER = Sizes()
TOY = Sizes(backbone="cnn4", width=8, batch=16, train_limit=600, local_epochs=1, probe_epochs=10, steps=2, warmup=1,
            epoch_images=128, probe_n=2_000, probe_d=64, probe_test=500, feature_images=256, method_steps=2)


# --------------------------------------------------------------------------------------------------
# Report, budget, progress
# --------------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    """One progress line with wall-clock time and seconds since start (flushed: fine under PYTHONUNBUFFERED)."""
    print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - T_START:6.1f}s] {msg}", flush=True)


class StageTimeout(BaseException):
    """Raised by SIGALRM when a stage reaches its deadline. A BaseException (like KeyboardInterrupt), so that
    library code that records and swallows ``Exception`` (the runner does, per run) cannot absorb it."""


@contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise :class:`StageTimeout` in the main thread after ``seconds`` (the hard end of a stage)."""
    def handler(signum: int, frame: Any) -> None:
        raise StageTimeout(f"stage deadline reached after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Report:
    """Everything measured, rewritten as JSON and Markdown after every stage, so nothing is lost to a kill."""

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.out = out
        self.data: dict[str, Any] = {**meta, "stages": {}}

    def flush(self) -> None:
        self.data["elapsed_s"] = round(time.perf_counter() - T_START, 2)
        self.out.mkdir(parents=True, exist_ok=True)
        for name, text in ((JSON_NAME, json.dumps(self.data, indent=2, default=str) + "\n"),
                           (MD_NAME, render_markdown(self.data))):
            tmp = self.out / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.out / name)


@dataclass
class Ctx:
    smoke: bool
    device: torch.device
    sizes: Sizes
    work: Path
    report: Report
    peak_override: float | None
    deadline: float = 0.0  # perf_counter time at which the current stage ends

    def left(self) -> float:
        return self.deadline - time.perf_counter()


def check(rec: dict[str, Any], name: str, value: Any, target: str, ok: bool | None) -> None:
    """Record one acceptance check (``ok`` None: not judged here, e.g. a GPU target in the CPU smoke)."""
    rec.setdefault("checks", []).append({"check": name, "value": value, "target": target, "pass": ok})


def run_stages(ctx: Ctx, budget: float, stages: dict[str, Callable[[Ctx, dict[str, Any]], None]]) -> None:
    """Run each stage in its share of the budget; record errors and timeouts and go on."""
    cum = 0.0
    for key, title, share in STAGES:
        cum += share
        ctx.deadline = T_START + budget * cum
        rec: dict[str, Any] = {"title": title, "share_s": round(budget * share, 1), "checks": [], "results": {}}
        ctx.report.data["stages"][key] = rec
        left = ctx.left()
        rec["allotted_s"] = round(left, 1)
        if left < MIN_STAGE_S:
            rec.update(status="skipped", note=f"budget spent: {max(left, 0):.0f} s left for this stage "
                                              f"(needs at least {MIN_STAGE_S:.0f} s)")
            log(f"{title}: skipped ({rec['note']})")
            ctx.report.flush()
            continue
        log(f"{title}: start ({left:.0f} s allotted)")
        rec["status"] = "running"  # on disk while it runs: a kill mid-stage still says which stage it was
        ctx.report.flush()
        t = time.perf_counter()
        try:
            with alarm(left):
                stages[key](ctx, rec)
            judged = [c["pass"] for c in rec["checks"] if c["pass"] is not None]
            rec["status"] = "pass" if all(judged) else "fail"
        except StageTimeout as e:
            rec.update(status="timeout", note=f"{e}; results so far kept")
        except Exception as e:  # noqa: BLE001 - one stage's error must not cost the others
            rec.update(status="error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        rec["seconds"] = round(time.perf_counter() - t, 2)
        failed = [c["check"] for c in rec["checks"] if c["pass"] is False]
        log(f"{title}: {rec['status']} in {rec['seconds']:.1f} s" + (f"; failed: {', '.join(failed)}" if failed else "")
            + (f"; {rec.get('error') or rec.get('note')}" if rec["status"] in ("error", "timeout") else ""))
        ctx.report.flush()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """``fn()`` and its wall time, the device's queued work included."""
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def run_tiny_suite(ctx: Ctx, name: str, doc: dict[str, Any], **kwargs: Any) -> tuple[api.SuiteResult, Path, float]:
    """Write ``doc`` as a suite YAML in the work dir and run it through the public API; also its makespan."""
    path = ctx.work / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **doc}))
    results = ctx.work / f"results-{name}"
    res, wall = timed(lambda: api.run_suite(path, results, progress="quiet", **kwargs), ctx.device)
    return res, results, wall


def run_files(results: Path, run_id: str) -> dict[str, Any]:
    """The stored files of one run that the checks read (missing ones as empty)."""
    rd = RunStore(results).run(run_id)
    tb = rd.file("traceback.txt")
    return {"status": rd.status, "env": read_json(rd.file("env.json"), {}), "eval": read_json(rd.file("eval.json"), {}),
            "metrics": rd.read_metrics(), "traceback": tb.read_text()[-3000:] if tb.exists() else None,
            "eval_mtime": rd.file("eval.json").stat().st_mtime if rd.file("eval.json").exists() else None}


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


# --------------------------------------------------------------------------------------------------
# Stage 1: correctness on the device
# --------------------------------------------------------------------------------------------------


def stage_correctness(ctx: Ctx, rec: dict[str, Any]) -> None:
    sz, dev = ctx.sizes, ctx.device
    base = {"method": "simclr", "fedx": True,
            "dataset": {"name": "cifar10", "source": "embedded", "train_limit": sz.train_limit},
            "model": {"backbone": sz.backbone, "width": sz.width},
            "federation": {"clients": 3, "partition": "dirichlet", "beta": 0.5, "rounds": 2,
                           "local_epochs": sz.local_epochs},
            "optim": {"batch_size": sz.batch},
            "eval": {"protocols": ["linear_probe", "knn"], "probe_epochs": sz.probe_epochs, "at_init": True},
            "perf": {"amp": "bf16" if dev.type == "cuda" else "none", "channels_last": True}}
    res, results, wall = run_tiny_suite(ctx, "acceptance-correctness", {"base": base}, device=str(dev))
    out = res.outcomes[0]
    files = run_files(results, out.run_id)
    r = rec["results"]
    r["run"] = {"config": base, "run_id": out.run_id, "state": out.state, "error": out.error, "wall_s": round(wall, 2),
                "device_recorded": files["env"].get("device"), "peak_cuda_mb": files["eval"].get("peak_cuda_mb"),
                "traceback_tail": files["traceback"]}
    log(f"  end-to-end run: {out.state} in {wall:.1f} s")
    check(rec, "run finishes", out.state, "done", out.state == "done")
    check(rec, "run on the device (env.json)", files["env"].get("device", {}).get("type"), dev.type,
          files["env"].get("device", {}).get("type") == dev.type)
    losses = [(m["round"], k, v) for m in files["metrics"] for k, v in (m.get("losses") or {}).items()]
    r["losses"] = [{"round": rd, "term": k, "value": v} for rd, k, v in losses]
    bad = [f"round {rd} {k}={v}" for rd, k, v in losses if not math.isfinite(v)]
    check(rec, "every logged loss finite", f"{len(losses)} values" + (f", non-finite: {bad}" if bad else ""),
          "all finite", bool(losses) and not bad)
    probe = files["eval"].get("metrics", {}).get("linear_probe_top1", {})
    r["probe"] = probe
    init, last = probe.get("init"), probe.get("last")
    check(rec, "probe above the random-init encoder", f"last {last} vs init {init}", "last > init",
          init is not None and last is not None and last > init)
    ctx.report.flush()
    step_agreement(ctx, rec, run_config_from_dict(base))


def _loss_and_grad(model: torch.nn.Module, xs: Sequence[torch.Tensor], device: torch.device, amp: bool,
                   channels_last: bool) -> tuple[float, torch.Tensor]:
    """Loss and flattened gradient of one training step (no optimiser step: the model is unchanged)."""
    xs = [x.to(device) for x in xs]
    if channels_last:
        xs = [x.contiguous(memory_format=torch.channels_last) for x in xs]
    model.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        out = model.training_step(*xs)
    out.loss.backward()
    grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().float().flatten().cpu()
             for p in model.trainable_parameters()]
    return float(out.loss.detach()), torch.cat(grads)


def step_agreement(ctx: Ctx, rec: dict[str, Any], cfg: Any) -> None:
    """The run's first local step (same init, same augmented batch) on CPU (NCHW fp32) and on the device
    (the run's layout), in strict fp32, in fp32 as runs use it (TF32 allowed), and in bf16 autocast."""
    dev, b = ctx.device, ctx.sizes.batch
    ds = load_dataset("cifar10", source="embedded", train_limit=ctx.sizes.train_limit)
    aug = build_augment("reference-cifar", ds.mean, ds.std, ds.train_x.shape[1])
    gen = torch.Generator().manual_seed(cfg.seed)
    x, xr = torch.from_numpy(ds.train_x[:b]), torch.from_numpy(ds.train_x[b : 2 * b])
    batch = (aug(x, gen), aug(x, gen), aug(xr, gen))
    ref = build_method(cfg, ds.channels)  # the run's random-init weights (seeded by the run seed)
    on_dev = copy.deepcopy(ref).to(dev)
    cl = cfg.perf.channels_last
    if cl:
        on_dev.to(memory_format=torch.channels_last)
    for m in (ref, on_dev):
        m.on_round_start(1, None)  # the frozen teacher: a copy of the round's starting model
        m.train()
    loss_ref, g_ref = _loss_and_grad(ref, batch, torch.device("cpu"), False, False)
    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        loss_dev, g_dev = _loss_and_grad(on_dev, batch, dev, False, cl)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    g_rel = float((g_dev - g_ref).norm() / g_ref.norm().clamp_min(1e-12))
    r = rec["results"]
    r["first_step"] = {"batch": f"{b} anchors x 2 views + {b} random", "loss_cpu": loss_ref,
                       "loss_device_fp32": loss_dev, "loss_rel_diff": rel(loss_dev, loss_ref),
                       "grad_rel_l2_diff": g_rel, "device_layout": "channels_last" if cl else "NCHW"}
    check(rec, "first step CPU vs device, fp32 (TF32 off): loss", f"rel diff {rel(loss_dev, loss_ref):.2e}",
          f"<= {FP32_LOSS_RTOL:g}", rel(loss_dev, loss_ref) <= FP32_LOSS_RTOL)
    check(rec, "first step CPU vs device, fp32 (TF32 off): gradient", f"rel L2 diff {g_rel:.2e}",
          f"<= {FP32_GRAD_RTOL:g}", g_rel <= FP32_GRAD_RTOL)
    if dev.type == "cuda":
        loss_tf32, g_tf32 = _loss_and_grad(on_dev, batch, dev, False, cl)
        g_rel32 = float((g_tf32 - g_ref).norm() / g_ref.norm().clamp_min(1e-12))
        r["first_step"].update(loss_device_tf32=loss_tf32, tf32_flags={"cudnn": flags[0], "matmul": flags[1]},
                               loss_rel_diff_tf32=rel(loss_tf32, loss_ref), grad_rel_l2_diff_tf32=g_rel32)
        d32 = rel(loss_tf32, loss_ref)
        check(rec, "first step CPU vs device, fp32 as runs use it (TF32 on): loss", f"rel diff {d32:.2e}",
              f"<= {TF32_LOSS_RTOL:g}", d32 <= TF32_LOSS_RTOL)
        check(rec, "first step CPU vs device, fp32 as runs use it (TF32 on): gradient", f"rel L2 diff {g_rel32:.2e}",
              f"<= {TF32_GRAD_RTOL:g}", g_rel32 <= TF32_GRAD_RTOL)
    loss_bf16, _ = _loss_and_grad(on_dev, batch, dev, True, cl)
    r["first_step"].update(loss_device_bf16=loss_bf16, loss_rel_diff_bf16_vs_fp32=rel(loss_bf16, loss_dev))
    check(rec, f"bf16 autocast vs fp32 loss, same batch ({dev.type})", f"rel diff {rel(loss_bf16, loss_dev):.2e}",
          f"<= {BF16_LOSS_RTOL:g}", rel(loss_bf16, loss_dev) <= BF16_LOSS_RTOL)
    log(f"  first step: loss cpu {loss_ref:.6f} device {loss_dev:.6f} (grad rel {g_rel:.1e}), bf16 {loss_bf16:.6f}")


# --------------------------------------------------------------------------------------------------
# Stage 2: speed of the paper step (gpu_step's step, counter and timer)
# --------------------------------------------------------------------------------------------------

MODES: list[tuple[str, bool, bool, bool]] = [  # name, bf16 autocast, channels_last, torch.compile
    ("fp32", False, False, False),
    ("bf16", True, False, False),
    ("bf16+channels_last", True, True, False),
    ("bf16+channels_last+compile", True, True, True),
]
CIFAR_MEAN, CIFAR_STD = gpu_step.CIFAR_MEAN, gpu_step.CIFAR_STD


def step_setup(ctx: Ctx, method: str, fedx: bool, channels_last: bool, compile_: bool) -> gpu_step.StepSetup:
    """A model ready for ``gpu_step.make_step``, as ``FederatedTrainer`` prepares a client round; the base
    step gets no random batch (the trainer draws none without FedX)."""
    sz, dev = ctx.sizes, ctx.device
    cfg = run_config_from_dict({"method": method, "fedx": fedx, "model": {"backbone": sz.backbone, "width": sz.width}})
    model = build_method(cfg, 3).to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile_:
        model.encoder.compile()  # as the trainer with perf.compile; the teacher copy runs eager
    model.on_round_start(1, None)
    gen = torch.Generator(device=dev).manual_seed(0)
    images = torch.randint(0, 256, (max(4 * sz.batch, 256), 32, 32, 3), dtype=torch.uint8, device=dev, generator=gen)
    model.prepare_local_training(images, lambda u8: normalize(u8, CIFAR_MEAN, CIFAR_STD))  # ProtoCL's k-means
    model.train()
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)
    augment = build_augment("reference-cifar", CIFAR_MEAN, CIFAR_STD, 32)
    xs = [gpu_step._layout(augment(images[: sz.batch], gen), channels_last) for _ in range(3)]
    xr = xs[2] if model.uses_random_batch else None
    return gpu_step.StepSetup(model, opt, images, (xs[0], xs[1], xr), augment, gen)  # type: ignore[arg-type]


def step_seconds(ctx: Ctx, s: gpu_step.StepSetup, amp: bool, channels_last: bool, steps: int, warmup: int) -> float:
    ns = argparse.Namespace(batch=ctx.sizes.batch, channels_last=channels_last)
    return gpu_step.time_steps(gpu_step.make_step(s, ns, amp, ctx.device, False), steps, warmup, ctx.device)


def mfu(ctx: Ctx, tflops: float, amp: bool) -> tuple[float | None, str]:
    """MFU in % and the peak it is taken against (None on CPU or for an unknown card)."""
    if ctx.device.type != "cuda":
        return None, "no MFU on CPU"
    if ctx.peak_override is not None:
        return 100 * tflops / ctx.peak_override, f"--peak-tflops {ctx.peak_override:g}"
    name = torch.cuda.get_device_name(ctx.device)
    peak = find_peak(name)
    if peak is None:
        return None, f"unknown peak for {name!r}: pass --peak-tflops"
    if amp:
        return 100 * tflops / peak[0], f"bf16 dense {peak[0]:g}"
    if torch.backends.cudnn.allow_tf32:
        return 100 * tflops / peak[1], f"tf32 dense {peak[1]:g} (cudnn.allow_tf32 on; fp32 {peak[2]:g})"
    return 100 * tflops / peak[2], f"fp32 {peak[2]:g} (TF32 off)"


def measure_step(ctx: Ctx, kind: str, fedx: bool, mode: str, amp: bool, cl: bool, comp: bool, flops: int
                 ) -> dict[str, Any]:
    """One row of the speed table: time the step in one mode, then its throughput and MFU."""
    sz = ctx.sizes
    t = time.perf_counter()
    s = step_setup(ctx, "simclr", fedx, cl, comp)
    sec = step_seconds(ctx, s, amp, cl, sz.steps, sz.warmup + (3 if comp else 0))
    tflops = flops / sec / 1e12
    pct, against = mfu(ctx, tflops, amp)
    students = (3 if fedx else 2) * sz.batch
    log(f"  {kind} {mode}: {sec * 1e3:.2f} ms/step, {sz.batch / sec:.0f} anchor img/s, {tflops:.1f} TFLOP/s"
        + (f", MFU {pct:.1f}% ({against})" if pct is not None else ""))
    return {"step": kind, "mode": mode, "ms_per_step": round(sec * 1e3, 3),
            "anchor_images_per_s": round(sz.batch / sec, 1), "student_images_per_s": round(students / sec, 1),
            "tflops": round(tflops, 3), "mfu_pct": None if pct is None else round(pct, 2), "peak": against,
            "measure_s": round(time.perf_counter() - t, 1)}


def stage_speed(ctx: Ctx, rec: dict[str, Any]) -> None:
    dev = ctx.device
    rows: list[dict[str, Any]] = rec["results"].setdefault("rows", [])
    notes: list[str] = rec["results"].setdefault("notes", [])
    errors: list[str] = rec["results"].setdefault("errors", [])
    flops: dict[str, int] = {}
    for kind, fedx in (("fedx", True), ("base", False)):  # FLOPs once per step kind, eager fp32 (same in bf16)
        flops[kind] = gpu_step.count_flops(step_setup(ctx, "simclr", fedx, False, False), False, dev)
    rec["results"]["gflop_per_step"] = {k: round(v / 1e9, 2) for k, v in flops.items()}
    log(f"  FLOPs per step: FedX {flops['fedx'] / 1e9:.1f} GFLOP, base {flops['base'] / 1e9:.1f} GFLOP")
    for mode, amp, cl, comp in MODES:
        for kind, fedx in (("fedx", True), ("base", False)):
            label = f"{kind} {mode}"
            if comp and dev.type != "cuda":
                notes.append(f"{label}: skipped, torch.compile is used on CUDA only (perf.compile)")
                continue
            if comp and ctx.left() < COMPILE_MIN_S:
                notes.append(f"{label}: skipped, {ctx.left():.0f} s left of the stage "
                             f"(compile needs ~{COMPILE_MIN_S:.0f})")
                continue
            if ctx.left() < 2:
                notes.append(f"{label}: skipped, stage budget spent")
                continue
            if comp:
                log(f"  {label}: compiling the backbone and timing ({ctx.left():.0f} s left of the stage)")
            try:  # one mode's failure (a compile error, say) is recorded; the other modes still run
                rows.append(measure_step(ctx, kind, fedx, mode, amp, cl, comp, flops[kind]))
            except Exception as e:  # noqa: BLE001
                errors.append(f"{label}: {type(e).__name__}: {e}")
                log(f"  {label}: ERROR {type(e).__name__}: {e}")
            ctx.report.flush()
    check(rec, "every mode measured without error", f"{len(errors)} errors" + (f": {errors}" if errors else ""),
          "no errors", not errors)
    bf16_fedx = [r for r in rows if r["step"] == "fedx" and r["mode"] != "fp32" and r["mfu_pct"] is not None]
    best = max(bf16_fedx, key=lambda r: r["mfu_pct"], default=None)
    on_gpu = dev.type == "cuda"
    check(rec, "FedX step MFU, best bf16 mode", f"{best['mfu_pct']:.1f}% ({best['mode']})" if best else "n/a",
          f">= {TARGET_MFU_PCT:g}%", (best["mfu_pct"] >= TARGET_MFU_PCT) if (best and on_gpu) else None)


# --------------------------------------------------------------------------------------------------
# Stage 3: paper-scale projection
# --------------------------------------------------------------------------------------------------


def epoch_seconds(ctx: Ctx, fedx: bool, amp: bool, cl: bool) -> tuple[float, int]:
    """One client's local epoch through ``FederatedTrainer`` on images generated on the device (after one
    untimed warm-up epoch); returns seconds and optimiser steps."""
    sz, dev = ctx.sizes, ctx.device
    cfg = run_config_from_dict({
        "method": "simclr", "fedx": fedx, "model": {"backbone": sz.backbone, "width": sz.width},
        "federation": {"clients": 1, "rounds": 2, "local_epochs": 1}, "optim": {"batch_size": sz.batch},
        "perf": {"amp": "bf16" if amp else "none", "channels_last": cl}, "device": str(dev)})
    gen = torch.Generator(device=dev).manual_seed(0)
    images = torch.randint(0, 256, (sz.epoch_images, 32, 32, 3), dtype=torch.uint8, device=dev, generator=gen)
    trainer = FederatedTrainer(cfg, build_method(cfg, 3), images, [np.arange(sz.epoch_images)],
                               build_augment("reference-cifar", CIFAR_MEAN, CIFAR_STD, 32), dev,
                               transform=lambda u8: normalize(u8, CIFAR_MEAN, CIFAR_STD))
    trainer.run_round()
    res, sec = timed(trainer.run_round, dev)
    if not all(math.isfinite(v) for v in res.losses.values()):
        raise RuntimeError(f"non-finite loss in the paper-size epoch: {res.losses}")
    return sec, res.steps


def eval_costs(ctx: Ctx) -> dict[str, Any]:
    """Feature extraction per image, the probe at (probe_n x probe_d, 100 epochs), kNN at (probe_n x probe_test)."""
    sz, dev = ctx.sizes, ctx.device
    cfg = run_config_from_dict({"model": {"backbone": sz.backbone, "width": sz.width}})
    enc = build_method(cfg, 3).to(dev).encoder
    gen = torch.Generator(device=dev).manual_seed(1)
    imgs = torch.randint(0, 256, (sz.feature_images, 32, 32, 3), dtype=torch.uint8, device=dev, generator=gen)
    extract_features(enc, imgs[:1024], CIFAR_MEAN, CIFAR_STD, 512, dev)  # warm-up (cuDNN autotune)
    _, t_feat = timed(lambda: extract_features(enc, imgs, CIFAR_MEAN, CIFAR_STD, 512, dev), dev)
    g = torch.Generator(device=dev).manual_seed(2)
    xtr = torch.randn(sz.probe_n, sz.probe_d, device=dev, generator=g)
    xte = torch.randn(sz.probe_test, sz.probe_d, device=dev, generator=g)
    ytr = torch.randint(0, 10, (sz.probe_n,), device=dev, generator=g)
    yte = torch.randint(0, 10, (sz.probe_test,), device=dev, generator=g)
    target_epochs = PAPER.probe_epochs if not ctx.smoke else 2
    few = max(1, target_epochs // 20)
    _, t_few = timed(lambda: linear_probe(xtr, ytr, xte, yte, epochs=few, num_classes=10, device=dev), dev)
    estimate = t_few * target_epochs / few
    if estimate < 0.5 * ctx.left():
        _, t_probe = timed(lambda: linear_probe(xtr, ytr, xte, yte, epochs=target_epochs, num_classes=10, device=dev),
                           dev)
        probe_note = f"measured at {target_epochs} epochs"
    else:
        t_probe, probe_note = estimate, f"scaled from {few} epochs ({t_few:.2f} s): too little stage time for all"
    _, t_knn = timed(lambda: knn_accuracy(xtr, ytr, xte, yte, k=200, num_classes=10), dev)
    return {"feature_s_per_image": t_feat / sz.feature_images, "feature_images": sz.feature_images,
            "probe_s": t_probe, "probe_shape": [sz.probe_n, sz.probe_d], "probe_epochs": target_epochs,
            "probe_note": probe_note, "knn_s": t_knn, "knn_shape": [sz.probe_n, sz.probe_test]}


def method_factors(ctx: Ctx, amp: bool, cl: bool, errors: list[str]) -> dict[str, float]:
    """Each Table-1 method's step time relative to FedSimCLR's, with and without FedX (same mode)."""
    sec: dict[str, float] = {}
    for fedx in (False, True):
        for m in TABLE1_METHODS:
            if ctx.left() < 5:
                break
            key = f"{m}{'+fedx' if fedx else ''}"
            try:
                sec[key] = step_seconds(ctx, step_setup(ctx, m, fedx, cl, False), amp, cl, ctx.sizes.method_steps,
                                        ctx.sizes.warmup)
            except Exception as e:  # noqa: BLE001 - a method that fails here is costed as FedSimCLR, and said so
                errors.append(f"{key}: {type(e).__name__}: {e}")
    ref = {k: sec.get("simclr+fedx" if k.endswith("+fedx") else "simclr") for k in sec}
    return {k: v / ref[k] for k, v in sec.items() if ref[k]}  # type: ignore[operator]


def run_seconds(cfg: Any, epoch_s: dict[bool, float], epoch_images: int, ev: dict[str, Any],
                factors: dict[str, float]) -> float:
    """Projected wall time of one run of the suite: local training + every evaluation it does."""
    n_train, n_test = DATASET_SIZES[cfg.data.name]
    f = cfg.federation
    key = f"{cfg.method}{'+fedx' if cfg.fedx.enabled else ''}"
    train = f.rounds * f.local_epochs * n_train / epoch_images * epoch_s[cfg.fedx.enabled] * factors.get(key, 1.0)
    evaluated = {r for r in range(1, f.rounds + 1) if r % cfg.eval.interval == 0} | {f.rounds}
    n_evals = len(evaluated) + int(cfg.eval.at_init)
    probe_n, _ = ev["probe_shape"]
    knn_n, knn_t = ev["knn_shape"]
    one_eval = (ev["feature_s_per_image"] * (n_train + n_test) + ev["probe_s"] * n_train / probe_n
                * cfg.eval.probe_epochs / ev["probe_epochs"] + ev["knn_s"] * n_train * n_test / (knn_n * knn_t))
    return train + n_evals * one_eval


def makespan(durations: Sequence[float], gpus: int) -> float:
    """Longest-processing-time-first list schedule of whole runs onto ``gpus`` (one run per GPU at a time)."""
    load = [0.0] * gpus
    for d in sorted(durations, reverse=True):
        load[load.index(min(load))] += d
    return max(load)


def stage_projection(ctx: Ctx, rec: dict[str, Any]) -> None:
    sz, dev = ctx.sizes, ctx.device
    r = rec["results"]
    r["sizes"] = {"epoch_images": sz.epoch_images, "batch": sz.batch, "backbone": sz.backbone}
    epochs: list[dict[str, Any]] = r.setdefault("epochs", [])
    eager = [m for m in MODES if m[0] in ("fp32", "bf16+channels_last")]
    for mode, amp, cl, _ in eager:
        for fedx in (True, False):
            sec, steps = epoch_seconds(ctx, fedx, amp, cl)
            epochs.append({"mode": mode, "step": "fedx" if fedx else "base", "seconds": round(sec, 3), "steps": steps,
                           "images": sz.epoch_images})
            log(f"  local epoch, {'fedx' if fedx else 'base'} {mode}: {sec:.2f} s for {sz.epoch_images} images "
                f"({steps} steps)")
            ctx.report.flush()
    ev = eval_costs(ctx)
    r["eval"] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in ev.items()}
    log(f"  eval: features {ev['feature_s_per_image'] * 6e4:.2f} s per 60k images, probe {ev['probe_s']:.2f} s "
        f"({ev['probe_note']}), kNN {ev['knn_s']:.2f} s")
    ctx.report.flush()
    best_mode = "bf16+channels_last"
    errors: list[str] = r.setdefault("errors", [])
    factors = method_factors(ctx, dev.type == "cuda", dev.type == "cuda", errors)
    r["method_step_factors"] = {k: round(v, 3) for k, v in factors.items()}
    if len(factors) < 2 * len(TABLE1_METHODS):
        r["method_factor_note"] = "not all methods measured (time or errors): missing ones costed as FedSimCLR"
    check(rec, "every method's step measured without error", f"{len(errors)} errors" + (f": {errors}" if errors
          else ""), "no errors", not errors)
    suite = load_suite(REPO / "suites" / "table1.yaml")
    r["suite"] = {"name": suite.name, "runs": len(suite.runs)}
    proj: list[dict[str, Any]] = r.setdefault("projection", [])
    for mode, *_ in eager:
        es = {e["step"] == "fedx": e["seconds"] for e in epochs if e["mode"] == mode}
        times = [run_seconds(c, es, sz.epoch_images, ev, factors) for c in suite.runs]
        c10 = [(c, t) for c, t in zip(suite.runs, times) if c.data.name == "cifar10"]
        fedx_run = next(t for c, t in c10 if c.method == "simclr" and c.fedx.enabled)
        proj.append({"mode": mode, "cifar10_fedsimclr_fedx_run_h": round(fedx_run / 3600, 3),
                     "cifar10_slowest_run_h": round(max(t for _, t in c10) / 3600, 3),
                     "table1_1gpu_h": round(sum(times) / 3600, 2),
                     "table1_8gpu_h": round(makespan(times, 8) / 3600, 2)})
        log(f"  projection ({mode}): CIFAR-10 FedSimCLR+FedX run {fedx_run / 3600:.2f} h; Table 1 "
            f"{sum(times) / 3600:.1f} h on 1 GPU, {makespan(times, 8) / 3600:.1f} h on 8")
    best = next(p for p in proj if p["mode"] == best_mode)
    gpu = dev.type == "cuda"
    r["note"] = ("toy sizes on CPU: the numbers only exercise the formula (and the trainer runs fp32 on a CPU "
                 "whatever perf.amp says)" if ctx.smoke else
                 "suites/table1.yaml as configured runs fp32 (perf defaults); the bf16+channels_last row assumes "
                 "perf.amp=bf16, perf.channels_last=true. Training from the measured 5,000-image epoch, scaled by "
                 "dataset size and each method's step cost; every evaluation of the run (at init, each round) costed")
    check(rec, f"one paper CIFAR-10 run (FedSimCLR+FedX, {best_mode})", f"{best['cifar10_fedsimclr_fedx_run_h']:.2f} h",
          f"<= {TARGET_RUN_S / 3600:g} h", best["cifar10_fedsimclr_fedx_run_h"] * 3600 <= TARGET_RUN_S if gpu else None)
    check(rec, f"Table 1 (90 runs) on 8 GPUs ({best_mode})", f"{best['table1_8gpu_h']:.2f} h",
          f"<= {TARGET_TABLE1_8_S / 3600:g} h", best["table1_8gpu_h"] * 3600 <= TARGET_TABLE1_8_S if gpu else None)


# --------------------------------------------------------------------------------------------------
# Stage 4: the scheduler on a GPU
# --------------------------------------------------------------------------------------------------


def max_concurrent(intervals: Sequence[tuple[float, float]]) -> int:
    """The largest number of [start, end) intervals that overlap at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])  # ends sort before starts
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def stage_scheduler(ctx: Ctx, rec: dict[str, Any]) -> None:
    gpu = ctx.device.type == "cuda"
    per_device, jobs = 2, 2
    doc = {"base": {"dataset": "synthetic", "model": {"backbone": "cnn4", "width": 8},
                    "federation": {"clients": 2, "rounds": 2, "local_epochs": 1, "min_size": 2},
                    "optim": {"batch_size": 32}, "eval": {"probe_epochs": 5, "knn_k": 5}},
           "grid": {"seed": [0, 1, 2, 3]}}
    devices = "0" if gpu else "cpu"
    res, results, wall = run_tiny_suite(ctx, "acceptance-scheduler", doc, devices=devices,
                                        runs_per_device=per_device, jobs=jobs)
    runs = []
    for o in res.outcomes:
        f = run_files(results, o.run_id)
        st = f["status"]
        runs.append({"run_id": o.run_id, "state": o.state, "error": o.error, "wall_s": round(o.wall_seconds, 2),
                     "status_device": st.get("device"), "env_device": f["env"].get("device"),
                     "start": st.get("started"), "end": f["eval_mtime"], "traceback_tail": f["traceback"]})
    r = rec["results"]
    r.update(devices=devices, runs_per_device=per_device, jobs=jobs, runs=runs, makespan_s=round(wall, 2))
    done = [x for x in runs if x["state"] == "done"]
    check(rec, "all 4 runs done", f"{len(done)}/{len(runs)}", "4/4", len(done) == 4 == len(runs))
    want = "cuda:0" if gpu else "cpu"
    got = sorted({f"{x['status_device']} / {(x['env_device'] or {}).get('type')}" for x in runs})
    check(rec, "each run's recorded device (status.json / env.json)", ", ".join(got), f"{want} / {ctx.device.type}",
          all(x["status_device"] == want and (x["env_device"] or {}).get("type") == ctx.device.type for x in runs))
    total = sum(x["wall_s"] for x in runs)  # each run as the scheduler saw it: process start to exit
    inside = sum(x["end"] - x["start"] for x in done if x["start"] is not None and x["end"] is not None)
    r.update(sum_single_run_s=round(total, 2), makespan_over_sum=round(wall / total, 3) if total else None,
             sum_in_run_s=round(inside, 2), in_run_note="training + evaluation inside each run process, from its "
             "recorded start (status.json) to its eval.json; the rest of a run's wall time is process start-up")
    check(rec, "makespan vs sum of single-run times", f"{wall:.1f} s vs {total:.1f} s", "makespan < sum (runs overlap)",
          wall < total)
    limit = min(per_device, jobs) if gpu else jobs
    ivals: dict[str, list[tuple[float, float]]] = {}
    for x in done:
        if x["start"] is not None and x["end"] is not None:
            ivals.setdefault(str(x["status_device"]), []).append((float(x["start"]), float(x["end"])))
    peak = max((max_concurrent(v) for v in ivals.values()), default=0)
    r["max_concurrent_per_device"] = {d: max_concurrent(v) for d, v in ivals.items()}
    check(rec, "most runs on one device at once (recorded start/end)", peak, f"<= {limit} (runs-per-device)",
          0 < peak <= limit and sum(len(v) for v in ivals.values()) == len(done))
    log(f"  scheduler: makespan {wall:.1f} s, sum of runs {total:.1f} s, most at once on a device {peak}")


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
    return str(v).replace("|", "/").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def render_markdown(d: dict[str, Any]) -> str:
    """The report as Markdown tables: stages, checks, then each stage's measurements."""
    stages = d.get("stages", {})
    lines = [f"# GPU acceptance ({d.get('mode')}): {d.get('device_name')}", "",
             f"torch {d.get('torch')}, CUDA {d.get('cuda')}, budget {d.get('budget_s')} s, elapsed "
             f"{d.get('elapsed_s')} s, started {d.get('started')}, commit {d.get('git_commit')}", ""]
    lines += _table(["stage", "status", "seconds", "allotted s", "note"],
                    [[s["title"], s.get("status", "running"), s.get("seconds"), s.get("allotted_s"),
                      s.get("error") or s.get("note")] for s in stages.values()])
    checks = [[s["title"], c["check"], c["value"], c["target"], {True: "pass", False: "FAIL", None: "n/a"}[c["pass"]]]
              for s in stages.values() for c in s.get("checks", [])]
    lines += ["## Checks", ""] + _table(["stage", "check", "value", "target", "result"], checks)
    speed = stages.get("speed", {}).get("results", {})
    if speed.get("rows"):
        lines += ["## Step speed (batch 64 + 64)" if d.get("mode") == "cuda" else "## Step speed (toy)", "",
                  f"GFLOP per step: {speed.get('gflop_per_step')}", ""]
        lines += _table(["step", "mode", "ms/step", "anchor img/s", "student img/s", "TFLOP/s", "MFU %",
                         "peak (TFLOP/s)"],
                        [[x["step"], x["mode"], x["ms_per_step"], x["anchor_images_per_s"], x["student_images_per_s"],
                          x["tflops"], x["mfu_pct"], x["peak"]] for x in speed["rows"]])
        lines += [f"- {n}" for n in speed.get("notes", [])] + ([""] if speed.get("notes") else [])
    proj = stages.get("projection", {}).get("results", {})
    if proj.get("epochs"):
        lines += ["## Paper-scale projection", ""]
        lines += _table(["local epoch", "mode", "seconds", "steps", "images"],
                        [[e["step"], e["mode"], e["seconds"], e["steps"], e["images"]] for e in proj["epochs"]])
    if proj.get("eval"):
        ev = proj["eval"]
        lines += [f"Evaluation: features {ev['feature_s_per_image'] * 1e6:.1f} µs/image; probe {ev['probe_s']:.2f} s "
                  f"on {ev['probe_shape']} for {ev['probe_epochs']} epochs ({ev['probe_note']}); "
                  f"kNN {ev['knn_s']:.2f} s on {ev['knn_shape']}.", "",
                  f"Step time of each method relative to FedSimCLR (same mode): {proj.get('method_step_factors')}", ""]
    if proj.get("projection"):
        lines += _table(["mode", "CIFAR-10 FedSimCLR+FedX run (h)", "slowest CIFAR-10 run (h)", "Table 1, 1 GPU (h)",
                         "Table 1, 8 GPUs (h)"],
                        [[p["mode"], p["cifar10_fedsimclr_fedx_run_h"], p["cifar10_slowest_run_h"], p["table1_1gpu_h"],
                          p["table1_8gpu_h"]] for p in proj["projection"]])
        lines += [str(proj.get("note", "")), ""]
    sched = stages.get("scheduler", {}).get("results", {})
    if sched.get("runs"):
        lines += [f"## Scheduler (devices {sched['devices']}, runs-per-device {sched['runs_per_device']}, jobs "
                  f"{sched['jobs']}): makespan {sched['makespan_s']} s, sum of runs {sched.get('sum_single_run_s')} s",
                  ""]
        t0 = min((x["start"] for x in sched["runs"] if x["start"] is not None), default=0.0)
        lines += _table(["run", "state", "device (status.json)", "device (env.json)", "wall s", "start s", "end s"],
                        [[x["run_id"][:12], x["state"], x["status_device"], (x["env_device"] or {}).get("name"),
                          x["wall_s"], None if x["start"] is None else round(x["start"] - t0, 2),
                          None if x["end"] is None else round(x["end"] - t0, 2)] for x in sched["runs"]])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--out", default="gpu-acceptance", help="folder for gpu_acceptance.json and .md")
    ap.add_argument("--budget-s", type=float, default=480.0, help="hard time budget in seconds (default 480)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak to take MFU against (overrides the table)")
    ap.add_argument("--cpu-smoke", action="store_true", help="every stage at toy size on the CPU (no MFU figures)")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary results folders (path printed)")
    args = ap.parse_args(argv)
    bad = (f"--budget-s must be > 0, got {args.budget_s:g}" if not args.budget_s > 0 else
           f"--peak-tflops must be > 0, got {args.peak_tflops:g}" if args.peak_tflops is not None
           and not args.peak_tflops > 0 else None)
    if bad:  # one line naming the problem, exit 2, nothing written
        print(f"gpu_acceptance.py: {bad}", file=sys.stderr)
        sys.exit(2)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("skip: CUDA not available", flush=True)
        return 0
    device = torch.device("cpu") if args.cpu_smoke else torch.device("cuda")
    if args.cpu_smoke:
        torch.set_num_threads(1)  # toy steps: threads only spin against each other on a busy machine
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the runner does when not deterministic
    env = environment_record(device)
    name = env["device"]["name"] if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    peak = find_peak(name) if device.type == "cuda" else None
    meta = {"script": "benchmarks/gpu_acceptance.py", "mode": "cpu-smoke" if args.cpu_smoke else "cuda",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "budget_s": args.budget_s, "device_name": name,
            "peak_tflops_table": peak, "peak_tflops_override": args.peak_tflops, "torch": torch.__version__,
            "cuda": torch.version.cuda, "git_commit": env.get("git_commit"), "env": env,
            "tolerances": {"fp32_loss": FP32_LOSS_RTOL, "fp32_grad": FP32_GRAD_RTOL, "tf32_loss": TF32_LOSS_RTOL,
                           "tf32_grad": TF32_GRAD_RTOL, "bf16_loss": BF16_LOSS_RTOL}}
    report = Report(Path(args.out), meta)
    work = Path(tempfile.mkdtemp(prefix="fedx-gpu-acceptance-"))
    ctx = Ctx(args.cpu_smoke, device, TOY if args.cpu_smoke else PAPER, work, report, args.peak_tflops)
    log(f"gpu_acceptance: {meta['mode']} on {name}, torch {torch.__version__}, budget {args.budget_s:g} s, "
        f"out {args.out}")
    report.flush()
    try:
        run_stages(ctx, args.budget_s, {"correctness": stage_correctness, "speed": stage_speed,
                                        "projection": stage_projection, "scheduler": stage_scheduler})
    finally:
        report.flush()
        if args.keep_work:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    stages = report.data["stages"]
    summary = ", ".join(f"{k} {v.get('status')}" for k, v in stages.items())
    log(f"done in {time.perf_counter() - T_START:.1f} s: {summary}; wrote {Path(args.out) / JSON_NAME} and {MD_NAME}")
    code = 1 if any(v.get("status") == "error" for v in stages.values()) else 0
    if any(v.get("status") == "timeout" for v in stages.values()):
        sys.stdout.flush()
        os._exit(code)  # a stage stopped mid-way may leave worker threads behind: do not wait for them
    return code


if __name__ == "__main__":
    sys.exit(main())

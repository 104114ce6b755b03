"""Throughput and model-FLOP utilisation (MFU) of one FedX training step on a GPU.

Usage::

    python3 benchmarks/gpu_step.py                       # fp32 and bf16, paper model, 64+64 batch
    python3 benchmarks/gpu_step.py --amp bf16 --channels-last --compile
    python3 benchmarks/gpu_step.py --cpu --steps 3       # no GPU: CPU step time, for reference only

The step is the paper's: CIFAR ResNet-18 (width 64), FedX wrapping SimCLR, 64 anchors (two views)
plus a 64-image random batch. The student forwards and backwards all 192 images; the frozen teacher
forwards view 2 and the random batch (128 images); SGD with momentum updates the student. This is
exactly ``FederatedTrainer``'s inner loop body (same autocast, same channels-last handling, same
optimiser), timed on fixed inputs ("step") and with the trainer's batched augmentation of uint8
images on the device in front of it ("step+augment").

Why MFU: images/s alone says nothing about how much of the card is left unused. FLOPs are counted
with ``torch.utils.flop_counter.FlopCounterMode`` over one eager step (student forward + backward,
teacher forward; the optimiser's element-wise work is not counted, as usual for MFU) and divided by
the measured step time and the card's dense peak. Peaks come from a table of known GPUs or
``--peak-tflops``. For fp32 the relevant peak depends on TF32: PyTorch lets cuDNN use TF32 for
convolutions by default (``torch.backends.cudnn.allow_tf32``), and convolutions are almost all of
this model's FLOPs, so fp32 MFU is reported against the TF32 peak when that flag is on, and against
the non-tensor-core fp32 peak too.

Without CUDA the script prints ``no CUDA device: skipped`` and exits 0 (unless ``--cpu``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from fedx_bench.config import FedXConfig, ModelConfig, RunConfig, validate_run
from fedx_bench.data.augment import build_augment
from fedx_bench.methods import Method
from fedx_bench.runner import build_method

# Dense peak TFLOP/s as (bf16, tf32, fp32 without tensor cores). Order matters: first substring match wins.
PEAKS: list[tuple[str, tuple[float, float, float]]] = [
    ("H100 PCIe", (756.0, 378.0, 51.2)),
    ("H100", (989.4, 494.7, 66.9)),  # SXM
    ("H200", (989.4, 494.7, 66.9)),
    ("GH200", (989.4, 494.7, 66.9)),
    ("A100", (312.0, 156.0, 19.5)),
]

CIFAR_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)


def find_peak(name: str) -> tuple[float, float, float] | None:
    for key, peak in PEAKS:
        if key.lower() in name.lower():
            return peak
    return None


@dataclass
class StepSetup:
    """A FedX model ready to step, with its optimiser and inputs."""

    model: Method
    opt: torch.optim.Optimizer
    images: torch.Tensor  # uint8 (N, 32, 32, 3) on the device, for the augmented variant
    x: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # fixed normalised x1, x2, xr
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    generator: torch.Generator


def build(args: argparse.Namespace, device: torch.device) -> StepSetup:
    """The paper model and a fixed batch, set up as ``FederatedTrainer`` does for one client round."""
    cfg = validate_run(RunConfig(
        method="simclr", fedx=FedXConfig(enabled=True), model=ModelConfig(backbone=args.backbone, width=args.width),
    ))
    model = build_method(cfg, 3).to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    model.on_round_start(1, None)  # installs the frozen teacher (a copy of the student, in eval mode)
    model.train()
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(0, 256, (max(4 * args.batch, 256), 32, 32, 3), dtype=torch.uint8, device=device,
                           generator=gen)
    augment = build_augment("reference-cifar", CIFAR_MEAN, CIFAR_STD, 32)
    xs = tuple(_layout(augment(images[: args.batch], gen), args.channels_last) for _ in range(3))
    return StepSetup(model, opt, images, xs, augment, gen)  # type: ignore[arg-type]


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def make_step(s: StepSetup, args: argparse.Namespace, amp: bool, device: torch.device, with_augment: bool
              ) -> Callable[[], None]:
    """One trainer step (optionally with its augmentation), as ``FederatedTrainer._train_client`` runs it."""
    n, b = s.images.shape[0], args.batch

    def step() -> None:
        if with_augment:
            i = torch.randint(0, n - b, (1,)).item()
            x = s.images[i : i + b]
            r = s.images[n - b :]
            x1 = _layout(s.augment(x, s.generator), args.channels_last)
            x2 = _layout(s.augment(x, s.generator), args.channels_last)
            xr = _layout(s.augment(r, s.generator), args.channels_last)
        else:
            x1, x2, xr = s.x
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = s.model.training_step(x1, x2, xr)
        s.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        s.opt.step()

    return step


def count_flops(s: StepSetup, amp: bool, device: torch.device) -> int:
    """FLOPs of student forward+backward and teacher forward for one step (optimiser excluded)."""
    x1, x2, xr = s.x
    with FlopCounterMode(display=False) as fc:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = s.model.training_step(x1, x2, xr)
        out.loss.backward()
    s.model.zero_grad(set_to_none=True)
    return int(fc.get_total_flops())


def time_steps(step: Callable[[], None], steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per step after ``warmup`` untimed steps (CUDA events bracket the timed ones: no per-step sync)."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            step()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000.0 / steps
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps


def measure_mode(args: argparse.Namespace, device: torch.device, amp: bool, peak_override: float | None) -> None:
    s = build(args, device)
    flops = count_flops(s, amp, device)  # eager, before any compile: same FLOPs, and the counter sees every op
    if args.compile and device.type == "cuda":
        s.model.encoder.compile()  # as FederatedTrainer with perf.compile
        s.model.on_round_start(1, None)  # the teacher copy must not share the compiled wrapper's state
    label = "bf16 autocast" if amp else "fp32"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    per_step = time_steps(make_step(s, args, amp, device, False), args.steps, args.warmup, device)
    per_step_aug = time_steps(make_step(s, args, amp, device, True), args.steps, args.warmup, device)
    b = args.batch
    achieved = flops / per_step / 1e12
    print(f"[{label}{', channels_last' if args.channels_last else ''}{', compiled' if args.compile else ''}] "
          f"{args.backbone}, batch {b} anchors x2 views + {b} random")
    print(f"  FLOPs per step (student fwd+bwd of {3 * b} images, teacher fwd of {2 * b}): {flops / 1e9:.4g} GFLOP")
    print(f"  step:          {per_step * 1e3:8.2f} ms   {b / per_step:9.0f} anchor images/s   "
          f"{3 * b / per_step:9.0f} student images/s   {achieved:7.1f} TFLOP/s")
    print(f"  step+augment:  {per_step_aug * 1e3:8.2f} ms   {b / per_step_aug:9.0f} anchor images/s   "
          f"(augmentation share {100 * (1 - per_step / per_step_aug):.1f}%)")
    if device.type == "cuda":
        print(f"  peak CUDA memory allocated: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
        name = torch.cuda.get_device_name(device)
        table = find_peak(name)
        if peak_override is not None:
            print(f"  MFU: {100 * achieved / peak_override:.1f}% of --peak-tflops {peak_override:g}")
        elif table is None:
            print(f"  MFU: unknown peak for {name!r}; pass --peak-tflops")
        elif amp:
            print(f"  MFU: {100 * achieved / table[0]:.1f}% of {table[0]:g} TFLOP/s (bf16 dense, {name})")
        else:
            tf32 = torch.backends.cudnn.allow_tf32
            ref = f"{100 * achieved / table[1]:.1f}% of {table[1]:g} TFLOP/s (tf32 dense)"
            strict = f"{100 * achieved / table[2]:.1f}% of {table[2]:g} TFLOP/s (fp32 non-tensor)"
            first, second = (ref, strict) if tf32 else (strict, ref)
            print(f"  MFU: {first}; {second}  [cudnn.allow_tf32={tf32}, "
                  f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}]")
    else:
        print(f"  CPU anchor: {achieved * 1e3:.1f} GFLOP/s with {torch.get_num_threads()} threads (no MFU on CPU)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64, help="anchors per step (random batch the same size)")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 10 on GPU, 1 on CPU)")
    ap.add_argument("--amp", choices=("none", "bf16", "both"), default="both",
                    help="precision of the step: fp32, bf16 autocast, or both one after the other")
    ap.add_argument("--channels-last", action="store_true", help="NHWC model and inputs (perf.channels_last)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the backbone (perf.compile, CUDA only)")
    ap.add_argument("--backbone", default="resnet18", help="backbone (default: the paper's resnet18)")
    ap.add_argument("--width", type=int, default=None, help="backbone width (default: the backbone's, 64)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak to compute MFU against (overrides table)")
    ap.add_argument("--cpu", action="store_true", help="without CUDA, time the step on the CPU instead of skipping")
    ap.add_argument("--no-tf32", action="store_true", help="disable TF32 in cuDNN and matmul for the fp32 runs")
    args = ap.parse_args(argv)
    if args.batch < 2 or args.steps < 1:
        ap.error("--batch must be >= 2 and --steps >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if torch.cuda.is_available():
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = True  # as the runner does when not deterministic
        if args.no_tf32:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    elif args.cpu:
        device = torch.device("cpu")
    else:
        print("no CUDA device: skipped")
        return 0
    if args.warmup is None:
        args.warmup = 10 if device.type == "cuda" else 1
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"gpu_step: device {name}, torch {torch.__version__}")
    modes = {"none": [False], "bf16": [True], "both": [False, True]}[args.amp]
    for amp in modes:
        if amp and device.type != "cuda":
            print("[bf16 autocast] skipped: the trainer uses bf16 autocast on CUDA only")
            continue
        measure_mode(args, device, amp, args.peak_tflops)
    return 0


if __name__ == "__main__":
    sys.exit(main())

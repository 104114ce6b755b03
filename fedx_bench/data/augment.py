"""Vectorised, per-sample-random image augmentation on whole batches (spec §1.5).

The reference code augments one PIL image at a time inside a ``DataLoader``; that is the training
bottleneck when the images already live in memory (or on the GPU). Here every transform works on a
whole uint8 batch ``(B, H, W, C)`` with tensor ops: each sample still gets its own random
parameters, but there is no Python loop over the batch and no PIL. All randomness comes from the
``torch.Generator`` passed in (it must live on the images' device), so the same seed gives the same
batch on the same device.

Layout: pipelines take uint8 ``(B, H, W, C)`` (as stored) and return float32 ``(B, C, H, W)``
normalised as ``(x / 255 - mean) / std``. The individual ops work on float ``(B, C, H, W)`` images
in ``[0, 1]`` and take per-sample parameter tensors, so each can be checked against the
corresponding per-image ``torchvision`` op; they live in ``augment_ops`` (this module: the random
parameter draws, the pipelines and ``build_augment``).

Pipelines (``AUGMENTATIONS``):

* ``"reference-cifar"``: reflect-pad 4 → random ``image_size`` crop → horizontal flip (p=0.5).
  The reference also applies ``ColorJitter(brightness=0)``, which torchvision treats as "no
  brightness op", so it is omitted here. Works for C=1 and C=3 and any size (crop back to
  ``image_size``; pass 28 for F-MNIST).
* ``"reference-svhn"``: zero-pad 4 → random crop → ColorJitter(0.4, 0.4, 0.4, 0.4) with a random
  per-sample op order (as torchvision's per-image ``randperm(4)``) → RandomRotation(15) (nearest,
  fill 0). No flip.
* ``"simclr"``: RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3), bilinear) → flip (p=0.5) →
  ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8 → RandomGrayscale(p=0.2).
* ``"none"``: normalisation only (the test / linear-probe transform).

Known deviations from the reference's PIL pipeline (all deliberate, all small):

* Colour ops run in float32 and are not re-quantised to uint8 between ops (PIL rounds after each
  op, and its hue op goes through an 8-bit HSV image). The float ops match torchvision's float
  tensor kernels to ~1e-6; against the PIL ops each single op differs by <= ~1/255 except hue
  (PIL quantises H to 1/256 turn: ~1/255 mean, up to ~17/255 on saturated pixels), and a full
  ColorJitter(0.4 x4) by ~1.6/255 on average.
* Rotation samples with ``grid_sample`` (nearest) like torchvision's tensor kernel; PIL's nearest
  rotation rounds differently at a few pixels per image.
* ``resized_crop`` is plain (non-antialiased) bilinear. That equals torchvision's antialiased resize
  whenever the crop box is not larger than the output (always the case when ``image_size`` equals
  the input size, as in every benchmark setting); it differs when downscaling.
* Grayscale (C=1) inputs: saturation, hue and grayscale conversion are identities (as in
  torchvision, which follows PIL); brightness and contrast still apply.

On CUDA everything stays on the device; ``color_jitter`` selects each op's samples with
``nonzero`` (16 small host syncs per call), which is negligible next to a training step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from fedx_bench.errors import ConfigError

# The ops live in ``augment_ops``; every public one is importable from here too (this module's ``__all__``).
from .augment_ops import (
    BRIGHTNESS,
    CONTRAST,
    HUE,
    SATURATION,
    _normalize_float,
    _per_sample,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    crop,
    hflip,
    hsv_to_rgb,
    normalize,
    pad,
    resized_crop,
    rgb_to_grayscale,
    rgb_to_hsv,
    rotate,
    to_float_chw,
)

__all__ = [
    "AUGMENTATIONS",
    "BRIGHTNESS",
    "CONTRAST",
    "HUE",
    "SATURATION",
    "BatchAugment",
    "ReferenceCifarAugment",
    "ReferenceSvhnAugment",
    "SimCLRAugment",
    "NoAugment",
    "build_augment",
    "normalize",
    "to_float_chw",
    "pad",
    "crop",
    "hflip",
    "rotate",
    "resized_crop",
    "rgb_to_grayscale",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "rgb_to_hsv",
    "hsv_to_rgb",
    "color_jitter",
    "sample_crop_offsets",
    "sample_mask",
    "sample_uniform",
    "sample_jitter_order",
    "sample_resized_crop_boxes",
]

class BatchAugment(Protocol):
    """A batch transform: uint8 ``(B, H, W, C)`` + generator → normalised float32 ``(B, C, H, W)``."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


# --------------------------------------------------------------------------------------------------
# Parameter samplers (all draws from the caller's generator, on its device)
# --------------------------------------------------------------------------------------------------


def sample_crop_offsets(
    batch: int, max_offset: int | tuple[int, int], generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent uniform ``top`` in ``0..max_top`` and ``left`` in ``0..max_left`` (``RandomCrop``)."""
    max_top, max_left = (max_offset, max_offset) if isinstance(max_offset, int) else max_offset
    top = torch.randint(0, max_top + 1, (batch,), generator=generator, device=device)
    left = torch.randint(0, max_left + 1, (batch,), generator=generator, device=device)
    return top, left


def sample_mask(batch: int, p: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Bernoulli(p) bool mask per sample (flip, RandomApply, RandomGrayscale)."""
    return torch.rand(batch, generator=generator, device=device) < p


def sample_uniform(
    batch: int, low: float, high: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Uniform ``[low, high)`` per sample (jitter factors, rotation angles)."""
    return low + (high - low) * torch.rand(batch, generator=generator, device=device)


def sample_jitter_order(batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A uniformly random permutation of the 4 jitter ops per sample (argsort of iid uniforms)."""
    return torch.rand(batch, 4, generator=generator, device=device).argsort(dim=1)


def _jitter_factors(
    batch: int,
    strength: tuple[float, float, float, float],
    generator: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor | None, ...]:
    """Factors as torchvision's ColorJitter draws them; a zero strength disables that op (``None``)."""
    b, c, s, h = strength
    out: list[torch.Tensor | None] = []
    for value in (b, c, s):
        out.append(None if value == 0 else sample_uniform(batch, max(0.0, 1.0 - value), 1.0 + value, generator, device))
    out.append(None if h == 0 else sample_uniform(batch, -h, h, generator, device))
    return tuple(out)


def sample_resized_crop_boxes(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator,
    device: torch.device,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    tries: int = 10,
) -> torch.Tensor:
    """``RandomResizedCrop.get_params`` vectorised: long ``(B, 4)`` boxes ``(top, left, h, w)``.

    All ``tries`` candidate (area, log-aspect) pairs are drawn at once; each sample takes its first
    candidate that fits, else the same centre-crop fallback torchvision uses.
    """
    area = float(height * width)
    u_area = torch.rand(batch, tries, generator=generator, device=device).double()
    u_ratio = torch.rand(batch, tries, generator=generator, device=device).double()
    target = area * (scale[0] + (scale[1] - scale[0]) * u_area)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u_ratio)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)  # first True (0 if none; handled below)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)

    # Fallback: the largest centred box whose aspect ratio is clipped into ``ratio``.
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    found = ok.any(dim=1)
    w = torch.where(found, w, torch.full_like(w, fw)).long()
    h = torch.where(found, h, torch.full_like(h, fh)).long()

    u_top = torch.rand(batch, generator=generator, device=device).double()
    u_left = torch.rand(batch, generator=generator, device=device).double()
    span_h = height - h + 1
    span_w = width - w + 1
    top = torch.minimum((u_top * span_h).floor().long(), span_h - 1)
    left = torch.minimum((u_left * span_w).floor().long(), span_w - 1)
    top = torch.where(found, top, (height - h) // 2)
    left = torch.where(found, left, (width - w) // 2)
    return torch.stack((top, left, h, w), dim=1)


# --------------------------------------------------------------------------------------------------
# Pipelines
# --------------------------------------------------------------------------------------------------


@dataclass
class _Pipeline:
    """Shared fields: normalisation statistics and output size."""

    mean: Sequence[float]
    std: Sequence[float]
    image_size: int
    name: str = field(default="", init=False)


@dataclass
class ReferenceCifarAugment(_Pipeline):
    """MOON/FedX CIFAR-10 train transform: reflect-pad 4, random crop, flip (p=0.5).

    ``ColorJitter(brightness=0)`` of the reference is a no-op and is left out.
    """

    padding: int = 4
    flip_p: float = 0.5
    name: str = field(default="reference-cifar", init=False)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = pad(to_float_chw(images), self.padding, "reflect")
        b, device = x.shape[0], x.device
        top, left = sample_crop_offsets(b, _max_offset(x, self.image_size), generator, device)
        x = crop(x, top, left, self.image_size)
        x = hflip(x, sample_mask(b, self.flip_p, generator, device))
        return _normalize_float(x, self.mean, self.std)


@dataclass
class ReferenceSvhnAugment(_Pipeline):
    """FedX SVHN train transform: zero-pad 4 + crop → ColorJitter(0.4 ×4, random order) → rotate ±15°."""

    padding: int = 4
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.4)
    degrees: float = 15.0
    name: str = field(default="reference-svhn", init=False)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = pad(to_float_chw(images), self.padding, "constant")
        b, device = x.shape[0], x.device
        top, left = sample_crop_offsets(b, _max_offset(x, self.image_size), generator, device)
        x = crop(x, top, left, self.image_size)
        factors = _jitter_factors(b, self.jitter, generator, device)
        order = sample_jitter_order(b, generator, device)
        x = color_jitter(x, *factors, order=order)
        angles = sample_uniform(b, -self.degrees, self.degrees, generator, device)
        x = rotate(x, angles)
        return _normalize_float(x, self.mean, self.std)


@dataclass
class SimCLRAugment(_Pipeline):
    """SimCLR recipe: RandomResizedCrop → flip → ColorJitter(.4,.4,.4,.1) w.p. 0.8 → grayscale w.p. 0.2."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    name: str = field(default="simclr", init=False)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = to_float_chw(images)
        b, _, h, w = x.shape
        device = x.device
        boxes = sample_resized_crop_boxes(b, h, w, generator, device, self.scale, self.ratio)
        x = resized_crop(x, boxes, self.image_size)
        x = hflip(x, sample_mask(b, self.flip_p, generator, device))
        apply = sample_mask(b, self.jitter_p, generator, device)
        factors = _jitter_factors(b, self.jitter, generator, device)
        order = sample_jitter_order(b, generator, device)
        x = color_jitter(x, *factors, order=order, mask=apply)
        gray = sample_mask(b, self.grayscale_p, generator, device)
        x = torch.where(_per_sample(gray, x).bool(), rgb_to_grayscale(x, x.shape[1]), x)
        return _normalize_float(x, self.mean, self.std)


@dataclass
class NoAugment(_Pipeline):
    """Test / feature-extraction transform: normalisation only (generator and image_size are unused)."""

    name: str = field(default="none", init=False)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return normalize(images, self.mean, self.std)


def _max_offset(padded: torch.Tensor, size: int) -> tuple[int, int]:
    """Largest (top, left) crop offsets; refuses a crop larger than the padded image."""
    h, w = padded.shape[-2:]
    if size > h or size > w:
        raise ValueError(f"crop size {size} is larger than the padded image ({h}x{w})")
    return h - size, w - size


AUGMENTATIONS: dict[str, type[_Pipeline]] = {
    "reference-cifar": ReferenceCifarAugment,
    "reference-svhn": ReferenceSvhnAugment,
    "simclr": SimCLRAugment,
    "none": NoAugment,
}


def build_augment(
    name: str, mean: Sequence[float], std: Sequence[float], image_size: int
) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Instantiate a named pipeline; unknown names are a configuration error listing the valid ones."""
    try:
        cls = AUGMENTATIONS[name]
    except KeyError:
        raise ConfigError(f"unknown augmentation {name!r}; choose one of {sorted(AUGMENTATIONS)}") from None
    return cls(mean=tuple(mean), std=tuple(std), image_size=int(image_size))

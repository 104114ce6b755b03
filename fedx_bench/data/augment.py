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
corresponding per-image ``torchvision`` op.

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
import torch.nn.functional as F

from fedx_bench.errors import ConfigError

__all__ = [
    "AUGMENTATIONS",
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

# ITU-R 601-2 luma weights, the values torchvision's tensor kernels use.
_LUMA = (0.2989, 0.587, 0.114)

# Op ids inside ``color_jitter``'s ``order`` tensor; same numbering as torchvision's ColorJitter.
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


class BatchAugment(Protocol):
    """A batch transform: uint8 ``(B, H, W, C)`` + generator → normalised float32 ``(B, C, H, W)``."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


# --------------------------------------------------------------------------------------------------
# Layout and normalisation
# --------------------------------------------------------------------------------------------------


def _check_images(images: torch.Tensor) -> None:
    """Fail early with a clear message instead of a shape error deep inside an op."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(
            f"expected a uint8 batch of shape (B, H, W, C); got dtype={images.dtype}, shape={tuple(images.shape)}"
        )


def to_float_chw(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, H, W, C)`` → float32 ``(B, C, H, W)`` in ``[0, 1]`` (what ``ToTensor`` does per image)."""
    _check_images(images_uint8)
    return images_uint8.permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()


_STATS_CACHE: dict[tuple[tuple[float, ...], str], torch.Tensor] = {}


def _stats(values: Sequence[float], channels: int, device: torch.device, what: str) -> torch.Tensor:
    """Per-channel statistics as a broadcastable ``(1, C, 1, 1)`` tensor (1 value broadcasts to C).

    Cached per device: building it from a Python list is a blocking host-to-device copy (a GPU sync)."""
    key = (tuple(float(v) for v in values), str(device))
    t = _STATS_CACHE.get(key)
    if t is None:
        t = torch.as_tensor(key[0], dtype=torch.float32, device=device).view(1, -1, 1, 1)
        _STATS_CACHE[key] = t
    if t.numel() not in (1, channels):
        raise ValueError(f"{what} has {t.numel()} values but the images have {channels} channels")
    return t


def _normalize_float(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel on a float ``(B, C, H, W)`` batch."""
    m = _stats(mean, x.shape[1], x.device, "mean")
    s = _stats(std, x.shape[1], x.device, "std")
    return (x - m) / s


def normalize(images_uint8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The test transform (``ToTensor`` + ``Normalize``): uint8 ``(B,H,W,C)`` → float ``(B,C,H,W)``."""
    return _normalize_float(to_float_chw(images_uint8), mean, std)


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a ``(B,)`` parameter so it broadcasts over the non-batch dims of ``like``."""
    return values.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.dim() - 1)))


# --------------------------------------------------------------------------------------------------
# Geometric ops (float (B, C, H, W), per-sample parameters)
# --------------------------------------------------------------------------------------------------


def pad(x: torch.Tensor, padding: int, mode: str = "constant") -> torch.Tensor:
    """Pad all four sides by ``padding`` px; ``mode`` is ``"constant"`` (zeros) or ``"reflect"``."""
    if mode not in ("constant", "reflect"):
        raise ValueError(f"unsupported padding mode {mode!r}")
    if padding == 0:
        return x
    return F.pad(x, (padding, padding, padding, padding), mode=mode)


def crop(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Crop a ``size`` window at per-sample ``(top, left)`` (boxes must lie inside the image).

    All windows of the batch are a strided ``unfold`` view; one advanced index picks each sample's
    window, so nothing is materialised beyond the output.
    """
    h, w = (size, size) if isinstance(size, int) else size
    windows = x.unfold(2, h, 1).unfold(3, w, 1)  # (B, C, H-h+1, W-w+1, h, w), a view
    batch = torch.arange(x.shape[0], device=x.device)
    top = top.to(device=x.device, dtype=torch.long)
    left = left.to(device=x.device, dtype=torch.long)
    # Advanced indices on dims 0, 2, 3 around a slice: the indexed dim leads, giving (B, C, h, w).
    return windows[batch, :, top, left]


def hflip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the samples where ``mask`` (bool ``(B,)``) is true."""
    return torch.where(_per_sample(mask, x).bool(), x.flip(-1), x)


def rotate(x: torch.Tensor, angles_deg: torch.Tensor) -> torch.Tensor:
    """Rotate each sample counter-clockwise by its angle about the image centre (nearest, fill 0).

    Same convention as ``torchvision`` ``rotate(..., expand=False, center=None)``: the output pixel
    at centred coordinates ``p`` reads the input at ``R(angle) p`` (y pointing down).
    """
    b, c, h, w = x.shape
    rad = angles_deg.to(device=x.device, dtype=x.dtype).view(b, 1, 1) * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # Output pixel centres in grid_sample's normalised coordinates (align_corners=False).
    xs = (torch.arange(w, device=x.device, dtype=x.dtype) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=x.device, dtype=x.dtype) * 2 + 1) / h - 1
    xs, ys = xs.view(1, 1, w), ys.view(1, h, 1)
    # The pixel-space rotation expressed in normalised coordinates (the ratios matter only if H != W).
    # Built directly rather than with affine_grid, whose batched matmul is the slow part on CPU.
    src_x = cos * xs - sin * (h / w) * ys
    src_y = sin * (w / h) * xs + cos * ys
    grid = torch.stack((src_x, src_y), dim=-1)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _bilinear_taps(
    start: torch.Tensor, length: torch.Tensor, out_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weight along one axis for resizing ``[start, start+length)`` to ``out_size``.

    Half-pixel-centre mapping with edge clamping, i.e. ``interpolate(mode="bilinear",
    align_corners=False)`` restricted to the box.
    """
    length = length.to(torch.float32)
    scale = (length / out_size).view(-1, 1)
    dst = torch.arange(out_size, device=start.device, dtype=torch.float32).view(1, -1) + 0.5
    src = (dst * scale - 0.5).clamp_min(0.0)
    last = (length - 1).view(-1, 1)
    i0 = torch.minimum(src.floor(), last)
    weight1 = src - i0
    i1 = torch.minimum(i0 + 1, last)
    offset = start.view(-1, 1).to(torch.long)
    return i0.long() + offset, i1.long() + offset, weight1


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Crop per-sample ``boxes`` (long ``(B, 4)``: top, left, height, width) and resize to ``size``.

    Separable bilinear (no antialias) via gathers, so every sample can have its own box without a
    loop; boxes must lie inside the image.
    """
    oh, ow = (size, size) if isinstance(size, int) else size
    b, c, h, w = x.shape
    boxes = boxes.to(device=x.device, dtype=torch.long)
    y0, y1, wy = _bilinear_taps(boxes[:, 0], boxes[:, 2], oh)
    x0, x1, wx = _bilinear_taps(boxes[:, 1], boxes[:, 3], ow)
    # Rows first: (B, C, oh, W).
    r0 = x.gather(2, y0.view(b, 1, oh, 1).expand(b, c, oh, w))
    r1 = x.gather(2, y1.view(b, 1, oh, 1).expand(b, c, oh, w))
    wy = wy.to(x.dtype).view(b, 1, oh, 1)
    rows = r0 + (r1 - r0) * wy
    # Then columns: (B, C, oh, ow).
    c0 = rows.gather(3, x0.view(b, 1, 1, ow).expand(b, c, oh, ow))
    c1 = rows.gather(3, x1.view(b, 1, 1, ow).expand(b, c, oh, ow))
    wx = wx.to(x.dtype).view(b, 1, 1, ow)
    return c0 + (c1 - c0) * wx


# --------------------------------------------------------------------------------------------------
# Colour ops (float (B, C, H, W) in [0, 1], per-sample factors)
# --------------------------------------------------------------------------------------------------


def rgb_to_grayscale(x: torch.Tensor, num_output_channels: int = 1) -> torch.Tensor:
    """Luma ``0.2989 R + 0.587 G + 0.114 B``, repeated to ``num_output_channels``; C=1 passes through."""
    if x.shape[1] == 1:
        gray = x
    else:
        r, g, b = x.unbind(1)
        gray = (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)
    return gray.expand(-1, num_output_channels, -1, -1).contiguous()


def _hsv_offsets(like: torch.Tensor) -> torch.Tensor:
    """Per-channel phase (R, G, B) = (5, 3, 1) sextants of the branch-free HSV → RGB formula.

    Made with ``arange`` on the target device, so there is no host-to-device copy per call.
    """
    return torch.arange(5, 0, -2, device=like.device, dtype=like.dtype).view(1, 3, 1, 1)


def _blend(x: torch.Tensor, other: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """``factor * x + (1 - factor) * other`` clamped to ``[0, 1]`` (torchvision's enhance blend)."""
    f = _per_sample(factors, x)
    return (f * x + (1.0 - f) * other).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Scale intensities by a per-sample factor (blend with black)."""
    return (x * _per_sample(factors, x)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend each sample with the mean of its grayscale image."""
    mean = rgb_to_grayscale(x, 1).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, factors)


def adjust_saturation(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend each pixel with its grayscale value; identity on single-channel images."""
    if x.shape[1] == 1:
        return x
    return _blend(x, rgb_to_grayscale(x, 1), factors)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB → HSV with H in ``[0, 1)``; grey pixels get H = S = 0 (division-free where max == min)."""
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    chroma = delta > 0
    safe_delta = torch.where(chroma, delta, torch.ones_like(delta))
    sat = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    # Sector by which channel is the maximum; ties resolved R, then G, then B (as PIL does).
    hue = torch.where(
        maxc == r,
        (g - b) / safe_delta,
        torch.where(maxc == g, (b - r) / safe_delta + 2.0, (r - g) / safe_delta + 4.0),
    )
    hue = torch.where(chroma, hue, torch.zeros_like(hue))
    hue = torch.remainder(hue / 6.0, 1.0)
    return torch.stack((hue, sat, maxc), dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV → RGB with the branch-free form ``v - v*s*clamp(min(k, 4-k), 0, 1)``, ``k = (n + 6h) mod 6``."""
    h, s, v = x.unbind(1)
    k = torch.remainder((6.0 * h).unsqueeze(1) + _hsv_offsets(x), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * ramp


def adjust_hue(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Rotate hue by a per-sample factor in ``[-0.5, 0.5]`` turns; identity on single-channel images.

    Fused HSV round trip: the shift is added to the hue in sextants and ``v * s`` is just
    ``max - min``, so saturation is never formed and the hue needs no wrap before the inverse
    (``hsv_to_rgb``'s formula is periodic). Same result as ``hsv_to_rgb(rgb_to_hsv(x))`` with the
    shifted hue, in about half the ops.
    """
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)
    # One-hot sector by which channel is the maximum; ties resolved R, then G, then B (as PIL does).
    # Bool-mask products instead of nested torch.where: same values, noticeably faster on CPU.
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    is_b = ~(is_r | is_g)
    hue_times_delta = (g - b) * is_r + (b - r + 2.0 * delta) * is_g + (r - g + 4.0 * delta) * is_b
    hue6 = hue_times_delta / torch.where(delta > 0, delta, torch.ones_like(delta))  # grey: 0 / 1
    hue6 = hue6.add_(6.0 * factors.to(device=x.device, dtype=x.dtype).view(-1, 1, 1)).unsqueeze(1)
    k = hue6 + _hsv_offsets(x)
    k = k.sub_(torch.floor(k / 6.0).mul_(6.0))  # k mod 6 (cheaper than torch.remainder on CPU)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return maxc.unsqueeze(1) - delta.unsqueeze(1) * ramp


_JITTER_OPS: dict[int, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    BRIGHTNESS: adjust_brightness,
    CONTRAST: adjust_contrast,
    SATURATION: adjust_saturation,
    HUE: adjust_hue,
}


def color_jitter(
    x: torch.Tensor,
    brightness: torch.Tensor | None,
    contrast: torch.Tensor | None,
    saturation: torch.Tensor | None,
    hue: torch.Tensor | None,
    order: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """ColorJitter with a per-sample op order, optionally only on the samples where ``mask`` is true.

    ``order`` is a long ``(B, 4)`` permutation of op ids (0 brightness, 1 contrast, 2 saturation,
    3 hue) as torchvision's ``randperm(4)``; ops whose factor tensor is ``None`` are skipped. At each
    of the 4 positions every op runs once on just the samples that scheduled it there, so the cost
    is about one pass per op regardless of how orders are distributed.
    """
    factors = {BRIGHTNESS: brightness, CONTRAST: contrast, SATURATION: saturation, HUE: hue}
    order = order.to(x.device)
    active = None if mask is None else mask.to(device=x.device, dtype=torch.bool)
    out = x.clone()
    for position in range(order.shape[1]):
        for op_id, fn in _JITTER_OPS.items():
            f = factors[op_id]
            if f is None:
                continue
            selected = order[:, position] == op_id
            if active is not None:
                selected = selected & active
            idx = selected.nonzero().flatten()
            if idx.numel() == 0:
                continue
            out[idx] = fn(out.index_select(0, idx), f.to(x.device).index_select(0, idx))
    return out


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

"""The individual batch ops of the augmentations, on float ``(B, C, H, W)`` images in ``[0, 1]`` with per-sample
parameter tensors: layout and normalisation, geometric ops (pad, crop, flip, rotate, resized crop) and colour ops
(grayscale, brightness, contrast, saturation, hue, ColorJitter). Each is deterministic given its parameters, so it
can be checked against the corresponding per-image ``torchvision`` op; the random draws and the pipelines that
chain these ops are in ``fedx_bench.data.augment``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

# ITU-R 601-2 luma weights, the values torchvision's tensor kernels use.
_LUMA = (0.2989, 0.587, 0.114)

# Op ids inside ``color_jitter``'s ``order`` tensor; same numbering as torchvision's ColorJitter.
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3



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


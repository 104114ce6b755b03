"""Tests for the vectorised batch augmentations (fedx_bench.data.augment).

Each op is compared with the per-image torchvision tensor kernel (looped over the batch here) for
fixed parameters; the samplers are checked for their distributions with fixed seeds (so the
chi-square checks are deterministic); the pipelines for shapes, devices, seeding and composition.

Tolerances (float32 images in [0, 1]):
* pad / crop / flip / grayscale on C=1: exact.
* colour ops and grayscale: <= 1e-5 absolute (observed ~1e-6; hue goes through HSV).
* rotation (nearest): identical on >= 99% of pixels; the sampling grid is computed differently
  from torchvision's, so a rounding tie can land on the other neighbour at a few pixels.
* resized crop (bilinear): <= 1e-5 against torchvision with antialias on and off (boxes never
  larger than the output, where the two agree).
"""

from __future__ import annotations

import colorsys
import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF1
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode, RandomResizedCrop

from fedx_bench.data import augment as A
from fedx_bench.errors import ConfigError

CIFAR_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
PIPELINES = ("reference-cifar", "reference-svhn", "simclr", "none")

# Chi-square critical values at p = 0.001 (fixed seeds make the checks deterministic anyway).
CHI2_CRIT_001 = {8: 26.124, 23: 49.728, 80: 124.839}

COLOUR_TOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def _single_intra_op_thread() -> Iterator[None]:
    """One intra-op thread for this module: the tensors are small, and on a busy 2-core box the
    OpenMP pool's contention makes each op ~100x slower. Restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _uint8_batch(b: int, h: int, w: int, c: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, h, w, c), generator=_gen(seed), dtype=torch.uint8)


def _float_batch(b: int = 12, c: int = 3, h: int = 32, w: int = 32, seed: int = 1) -> torch.Tensor:
    return A.to_float_chw(_uint8_batch(b, h, w, c, seed))


def _chi2(counts: torch.Tensor) -> float:
    expected = counts.sum().item() / counts.numel()
    return float(((counts.double() - expected) ** 2 / expected).sum())


# ------------------------------------------------------------------------------------------------
# Geometric ops vs torchvision
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reflect", "constant"])
@pytest.mark.parametrize("c,size", [(3, 32), (1, 28)])
def test_pad_crop_matches_torchvision_exactly(mode: str, c: int, size: int) -> None:
    x = _float_batch(b=10, c=c, h=size, w=size)
    g = _gen(3)
    top, left = A.sample_crop_offsets(10, 8, g, x.device)
    out = A.crop(A.pad(x, 4, mode), top, left, size)
    tv_mode = "reflect" if mode == "reflect" else "constant"
    ref = torch.stack(
        [
            TF.crop(TF.pad(x[i], [4], fill=0, padding_mode=tv_mode), int(top[i]), int(left[i]), size, size)
            for i in range(10)
        ]
    )
    assert out.shape == (10, c, size, size)
    assert torch.equal(out, ref)


def test_crop_non_square_window() -> None:
    x = _float_batch(b=4, h=20, w=30)
    top, left = torch.tensor([0, 3, 5, 10]), torch.tensor([0, 7, 12, 20])
    out = A.crop(x, top, left, (10, 10))
    ref = torch.stack([TF.crop(x[i], int(top[i]), int(left[i]), 10, 10) for i in range(4)])
    assert torch.equal(out, ref)


def test_hflip_matches_torchvision_exactly() -> None:
    x = _float_batch(b=8)
    mask = torch.tensor([True, False, True, True, False, False, True, False])
    out = A.hflip(x, mask)
    ref = torch.stack([TF.horizontal_flip(x[i]) if mask[i] else x[i] for i in range(8)])
    assert torch.equal(out, ref)


@pytest.mark.parametrize("c,h,w", [(3, 32, 32), (1, 28, 28), (3, 24, 40)])
def test_rotate_matches_torchvision_nearest(c: int, h: int, w: int) -> None:
    x = _float_batch(b=16, c=c, h=h, w=w)
    angles = A.sample_uniform(16, -45.0, 45.0, _gen(5), x.device)
    out = A.rotate(x, angles)
    ref = torch.stack(
        [TF.rotate(x[i], float(angles[i]), interpolation=InterpolationMode.NEAREST, fill=0) for i in range(16)]
    )
    pixel_equal = (out == ref).all(dim=1).float().mean().item()
    assert pixel_equal >= 0.99, pixel_equal


def test_rotate_conventions() -> None:
    """Angle 0 is the identity and +90 deg is a counter-clockwise quarter turn (torch.rot90)."""
    x = _float_batch(b=3, h=16, w=16)
    assert torch.equal(A.rotate(x, torch.zeros(3)), x)
    assert torch.equal(A.rotate(x, torch.full((3,), 90.0)), torch.rot90(x, 1, dims=(-2, -1)))


@pytest.mark.parametrize("antialias", [True, False])
def test_resized_crop_matches_torchvision(antialias: bool) -> None:
    x = _float_batch(b=24)
    boxes = A.sample_resized_crop_boxes(24, 32, 32, _gen(7), x.device)
    boxes[0] = torch.tensor([0, 0, 32, 32])  # full image: identity
    boxes[1] = torch.tensor([31, 0, 1, 32])  # one row
    boxes[2] = torch.tensor([5, 9, 7, 3])  # tall, thin, small
    out = A.resized_crop(x, boxes, 32)
    ref = torch.stack(
        [TF.resized_crop(x[i], *[int(v) for v in boxes[i]], [32, 32], antialias=antialias) for i in range(24)]
    )
    assert torch.equal(out[0], x[0])
    assert (out - ref).abs().max().item() <= COLOUR_TOL


def test_resized_crop_other_output_size() -> None:
    x = _float_batch(b=6, c=1, h=28, w=28)
    boxes = A.sample_resized_crop_boxes(6, 28, 28, _gen(8), x.device, scale=(0.08, 0.3))
    out = A.resized_crop(x, boxes, (40, 36))
    ref = torch.stack([TF.resized_crop(x[i], *[int(v) for v in boxes[i]], [40, 36]) for i in range(6)])
    assert out.shape == (6, 1, 40, 36)
    assert (out - ref).abs().max().item() <= COLOUR_TOL


# ------------------------------------------------------------------------------------------------
# Colour ops vs torchvision
# ------------------------------------------------------------------------------------------------

COLOUR_OPS = [
    (A.adjust_brightness, TF.adjust_brightness, (0.0, 2.0)),
    (A.adjust_contrast, TF.adjust_contrast, (0.0, 2.0)),
    (A.adjust_saturation, TF.adjust_saturation, (0.0, 2.0)),
    (A.adjust_hue, TF.adjust_hue, (-0.5, 0.5)),
]


@pytest.mark.parametrize("op,ref_op,bounds", COLOUR_OPS, ids=["brightness", "contrast", "saturation", "hue"])
@pytest.mark.parametrize("c", [3, 1])
def test_colour_op_matches_torchvision(op, ref_op, bounds: tuple[float, float], c: int) -> None:
    x = _float_batch(b=16, c=c)
    x[0] = 0.5  # a flat grey image: hue undefined, contrast mean == pixels
    x[1, :, :16] = 0.0  # black region: V == 0
    factors = A.sample_uniform(16, *bounds, _gen(11), x.device)
    out = op(x, factors)
    ref = torch.stack([ref_op(x[i], float(factors[i])) for i in range(16)])
    assert (out - ref).abs().max().item() <= COLOUR_TOL


def test_hsv_round_trip_and_ties() -> None:
    x = _float_batch(b=4)
    # Pixels where two channels tie for the maximum exercise the sector tie-breaking.
    x[0, 1] = x[0, 0]
    x[1, 2] = x[1, 1]
    assert (A.hsv_to_rgb(A.rgb_to_hsv(x)) - x).abs().max().item() <= 1e-6


def test_hsv_matches_colorsys() -> None:
    """Independent reference for the public HSV helpers: Python's colorsys, pixel by pixel."""
    x = _float_batch(b=1, h=16, w=16)
    x[0, :, 0] = x[0, 0, 0]  # a grey row
    hsv = A.rgb_to_hsv(x)[0].flatten(1).T.double()
    ref = torch.tensor([colorsys.rgb_to_hsv(*p) for p in x[0].flatten(1).T.double().tolist()])
    assert (hsv - ref).abs().max().item() <= 1e-6
    back = A.hsv_to_rgb(A.rgb_to_hsv(x))[0].flatten(1).T.double()
    ref_back = torch.tensor([colorsys.hsv_to_rgb(*p) for p in ref.tolist()])
    assert (back - ref_back).abs().max().item() <= 1e-6


def test_grayscale_matches_torchvision() -> None:
    x = _float_batch(b=6)
    for n in (1, 3):
        out = A.rgb_to_grayscale(x, n)
        ref = torch.stack([TF.rgb_to_grayscale(x[i], n) for i in range(6)])
        assert (out - ref).abs().max().item() <= COLOUR_TOL
    g1 = _float_batch(b=2, c=1)
    assert torch.equal(A.rgb_to_grayscale(g1, 1), g1)


def test_color_jitter_follows_per_sample_order() -> None:
    """All 24 op orders at once; each sample equals torchvision's ops applied in its own order."""
    perms = torch.tensor(list(itertools.permutations(range(4))))
    b = perms.shape[0]
    x = _float_batch(b=b)
    g = _gen(13)
    factors = [A.sample_uniform(b, 0.6, 1.4, g, x.device) for _ in range(3)]
    factors.append(A.sample_uniform(b, -0.4, 0.4, g, x.device))
    out = A.color_jitter(x, *factors, order=perms)
    tv_ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for i in range(b):
        ref = x[i]
        for op_id in perms[i].tolist():
            ref = tv_ops[op_id](ref, float(factors[op_id][i]))
        assert (out[i] - ref).abs().max().item() <= COLOUR_TOL, perms[i]
    # Order matters (the ops do not commute), so a fixed order would be a real deviation.
    fixed = A.color_jitter(x, *factors, order=perms[:1].expand(b, 4))
    assert (fixed - out).abs().max().item() > 1e-3


def test_color_jitter_mask_and_disabled_ops() -> None:
    x = _float_batch(b=8)
    order = A.sample_jitter_order(8, _gen(2), x.device)
    f = torch.full((8,), 1.3)
    mask = torch.tensor([True, False] * 4)
    out = A.color_jitter(x, f, None, None, None, order=order, mask=mask)
    assert torch.equal(out[~mask], x[~mask])
    assert torch.equal(out[mask], A.adjust_brightness(x[mask], f[mask]))
    assert torch.equal(A.color_jitter(x, None, None, None, None, order=order), x)


# ------------------------------------------------------------------------------------------------
# Parameter distributions
# ------------------------------------------------------------------------------------------------


def test_crop_offsets_uniform_0_to_8() -> None:
    top, left = A.sample_crop_offsets(20_000, 8, _gen(21), torch.device("cpu"))
    assert int(top.min()) == 0 and int(top.max()) == 8 and int(left.min()) == 0 and int(left.max()) == 8
    for v in (top, left):
        assert _chi2(torch.bincount(v, minlength=9)) < CHI2_CRIT_001[8]
    assert _chi2(torch.bincount(top * 9 + left, minlength=81)) < CHI2_CRIT_001[80]


def test_mask_rates() -> None:
    n = 20_000
    for p in (0.5, 0.8, 0.2):
        rate = A.sample_mask(n, p, _gen(22), torch.device("cpu")).float().mean().item()
        assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / n), (p, rate)


def test_jitter_order_uniform_over_permutations() -> None:
    order = A.sample_jitter_order(24_000, _gen(23), torch.device("cpu"))
    assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(24_000, 4))
    code = order[:, 0] * 64 + order[:, 1] * 16 + order[:, 2] * 4 + order[:, 3]
    _, counts = torch.unique(code, return_counts=True)
    assert counts.numel() == 24
    assert _chi2(counts) < CHI2_CRIT_001[23]


def test_uniform_ranges() -> None:
    v = A.sample_uniform(10_000, -15.0, 15.0, _gen(24), torch.device("cpu"))
    assert v.min() >= -15.0 and v.max() < 15.0
    assert abs(v.mean().item()) < 4 * 30 / math.sqrt(12 * 10_000)


def test_resized_crop_boxes_in_range_and_match_torchvision_sampler() -> None:
    n, size = 20_000, 32
    boxes = A.sample_resized_crop_boxes(n, size, size, _gen(25), torch.device("cpu")).double()
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= size).all() and (left + w <= size).all()
    assert (h >= 1).all() and (w >= 1).all()
    # Areas / aspects stay in range up to the rounding of h and w to integers.
    frac = h * w / size**2
    assert ((h + 0.5) * (w + 0.5) / size**2 >= 0.08).all()
    assert (frac <= 1.0).all()
    assert ((w + 0.5) / (h - 0.5) >= 3 / 4).all() and ((w - 0.5) / (h + 0.5) <= 4 / 3).all()
    # Offsets uniform given the box: the relative position is ~U(0, 1), mean 0.5.
    rel = (top + 0.5) / (size - h + 1)
    assert abs(rel.mean().item() - 0.5) < 0.01

    # Same distribution as torchvision's (looped, global-RNG) sampler.
    m = 3000
    with torch.random.fork_rng():
        torch.manual_seed(0)
        img = torch.zeros(3, size, size)
        tv = torch.tensor(
            [RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(m)],
            dtype=torch.float64,
        )
    tv_frac = tv[:, 2] * tv[:, 3] / size**2
    tv_log_aspect = torch.log(tv[:, 3] / tv[:, 2])
    se = 4 * math.sqrt(tv_frac.var().item() / m + frac.var().item() / n)
    assert abs(frac.mean().item() - tv_frac.mean().item()) < se
    se = 4 * math.sqrt(tv_log_aspect.var().item() / m + torch.log(w / h).var().item() / n)
    assert abs(torch.log(w / h).mean().item() - tv_log_aspect.mean().item()) < se


@pytest.mark.parametrize("h,w", [(4, 100), (100, 4)])
def test_resized_crop_boxes_fallback_matches_torchvision(h: int, w: int) -> None:
    """Shapes where no try can fit: the centre-crop fallback is deterministic, compare exactly."""
    boxes = A.sample_resized_crop_boxes(5, h, w, _gen(26), torch.device("cpu"))
    tv = RandomResizedCrop.get_params(torch.zeros(1, h, w), [0.08, 1.0], [3 / 4, 4 / 3])
    assert boxes.tolist() == [list(tv)] * 5


# ------------------------------------------------------------------------------------------------
# Pipelines
# ------------------------------------------------------------------------------------------------


def test_reference_cifar_end_to_end_is_a_padded_crop_with_uniform_offsets() -> None:
    """Every output is exactly one reflect-padded crop (maybe flipped); offsets and flips are fair.

    16x16 images: at 8x8 a flipped reflect-padded window can coincide with another window.
    """
    b, s = 3000, 16
    imgs = _uint8_batch(b, s, s, 1, seed=31)
    out = A.build_augment("reference-cifar", [0.0], [1.0], s)(imgs, _gen(32))
    assert out.shape == (b, 1, s, s) and out.dtype == torch.float32
    out_u8 = (out * 255).round().to(torch.uint8)[:, 0]  # (B, s, s)
    padded = (A.pad(A.to_float_chw(imgs), 4, "reflect")[:, 0] * 255).round().to(torch.uint8)
    windows = padded.unfold(1, s, 1).unfold(2, s, 1).flatten(1, 2)  # (B, 81, s, s) strided view
    plain = (windows == out_u8[:, None]).flatten(2).all(dim=2)
    mirrored = (windows == out_u8.flip(-1)[:, None]).flatten(2).all(dim=2)
    matches = torch.cat((plain, mirrored), dim=1)
    assert (matches.sum(dim=1) == 1).all()
    idx = matches.float().argmax(dim=1)
    flip = idx >= 81
    pos = idx % 81
    top, left = pos // 9, pos % 9
    assert abs(flip.float().mean().item() - 0.5) < 4 * math.sqrt(0.25 / b)
    for v in (top, left):
        assert _chi2(torch.bincount(v, minlength=9)) < CHI2_CRIT_001[8]


def test_reference_svhn_composition_matches_torchvision_ops() -> None:
    """Re-draw the pipeline's parameters (same generator order) and apply torchvision per image.

    Pins the draw order: offsets, jitter factors (b, c, s, h), op order, rotation angles.
    """
    b = 32
    imgs = _uint8_batch(b, 32, 32, 3, seed=41)
    out = A.build_augment("reference-svhn", CIFAR_MEAN, CIFAR_STD, 32)(imgs, _gen(42))
    g, dev = _gen(42), torch.device("cpu")
    top, left = A.sample_crop_offsets(b, 8, g, dev)
    factors = [A.sample_uniform(b, 0.6, 1.4, g, dev) for _ in range(3)]
    factors.append(A.sample_uniform(b, -0.4, 0.4, g, dev))
    order = A.sample_jitter_order(b, g, dev)
    angles = A.sample_uniform(b, -15.0, 15.0, g, dev)
    tv_ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    x = A.to_float_chw(imgs)
    refs = []
    for i in range(b):
        y = TF.crop(TF.pad(x[i], [4], fill=0), int(top[i]), int(left[i]), 32, 32)
        for op_id in order[i].tolist():
            y = tv_ops[op_id](y, float(factors[op_id][i]))
        y = TF.rotate(y, float(angles[i]), interpolation=InterpolationMode.NEAREST, fill=0)
        refs.append(TF.normalize(y, list(CIFAR_MEAN), list(CIFAR_STD)))
    ref = torch.stack(refs)
    close = ((out - ref).abs() <= COLOUR_TOL / min(CIFAR_STD)).all(dim=1).float().mean().item()
    assert close >= 0.99, close


def test_simclr_composition_matches_torchvision_ops() -> None:
    """Same idea for the SimCLR pipeline; pins boxes, flip, jitter mask, factors, order, grayscale."""
    b = 32
    imgs = _uint8_batch(b, 32, 32, 3, seed=51)
    out = A.build_augment("simclr", [0.5] * 3, [0.25] * 3, 32)(imgs, _gen(52))
    g, dev = _gen(52), torch.device("cpu")
    boxes = A.sample_resized_crop_boxes(b, 32, 32, g, dev)
    flip = A.sample_mask(b, 0.5, g, dev)
    apply = A.sample_mask(b, 0.8, g, dev)
    factors = [A.sample_uniform(b, 0.6, 1.4, g, dev) for _ in range(3)]
    factors.append(A.sample_uniform(b, -0.1, 0.1, g, dev))
    order = A.sample_jitter_order(b, g, dev)
    gray = A.sample_mask(b, 0.2, g, dev)
    tv_ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    x = A.to_float_chw(imgs)
    refs = []
    for i in range(b):
        y = TF.resized_crop(x[i], *[int(v) for v in boxes[i]], [32, 32], antialias=True)
        if flip[i]:
            y = TF.horizontal_flip(y)
        if apply[i]:
            for op_id in order[i].tolist():
                y = tv_ops[op_id](y, float(factors[op_id][i]))
        if gray[i]:
            y = TF.rgb_to_grayscale(y, 3)
        refs.append(TF.normalize(y, [0.5] * 3, [0.25] * 3))
    ref = torch.stack(refs)
    assert (out - ref).abs().max().item() <= COLOUR_TOL * 4 * 4  # 1/std = 4, plus resize error


def test_simclr_grayscale_rate() -> None:
    b = 2000
    imgs = _uint8_batch(b, 8, 8, 3, seed=61)
    out = A.build_augment("simclr", [0.0], [1.0], 8)(imgs, _gen(62))
    is_gray = ((out[:, 0] - out[:, 1]).abs().amax(dim=(1, 2)) < 1e-6) & (
        (out[:, 0] - out[:, 2]).abs().amax(dim=(1, 2)) < 1e-6
    )
    assert abs(is_gray.float().mean().item() - 0.2) < 4 * math.sqrt(0.16 / b)


def test_none_is_totensor_normalize() -> None:
    imgs = _uint8_batch(5, 32, 32, 3, seed=71)
    out = A.build_augment("none", CIFAR_MEAN, CIFAR_STD, 32)(imgs, _gen(0))
    ref = torch.stack(
        [TF1.normalize(TF1.to_tensor(imgs[i].numpy()), list(CIFAR_MEAN), list(CIFAR_STD)) for i in range(5)]
    )
    assert torch.equal(out, ref)
    assert torch.equal(A.normalize(imgs, CIFAR_MEAN, CIFAR_STD), ref)


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("c,size", [(3, 32), (1, 28), (3, 28), (1, 32)])
def test_pipeline_shape_dtype_and_seeding(name: str, c: int, size: int) -> None:
    mean, std = ([0.5] * c, [0.25] * c)
    aug = A.build_augment(name, mean, std, size)
    imgs = _uint8_batch(20, size, size, c, seed=81)
    out = aug(imgs, _gen(5))
    assert out.shape == (20, c, size, size)
    assert out.dtype == torch.float32 and out.device == imgs.device
    assert torch.isfinite(out).all()
    # [0, 1] images map into [(0 - m) / s, (1 - m) / s].
    assert out.min().item() >= -2.0 - 1e-5 and out.max().item() <= 2.0 + 1e-5
    assert torch.equal(aug(imgs, _gen(5)), out)
    if name != "none":
        assert not torch.equal(aug(imgs, _gen(6)), out)
        # Two draws from one generator (the two views x1, x2) differ.
        g = _gen(7)
        assert not torch.equal(aug(imgs, g), aug(imgs, g))


def test_grayscale_input_colour_ops_are_identity() -> None:
    """C=1: saturation, hue and grayscale do nothing (PIL/torchvision behaviour)."""
    x = _float_batch(b=4, c=1)
    f = torch.full((4,), 1.4)
    assert torch.equal(A.adjust_saturation(x, f), x)
    assert torch.equal(A.adjust_hue(x, torch.full((4,), 0.3)), x)
    order = torch.tensor([[2, 3, 0, 1]] * 4)
    # Only brightness and contrast act, in the order brightness then contrast.
    expected = A.adjust_contrast(A.adjust_brightness(x, f), f)
    assert torch.equal(A.color_jitter(x, f, f, f, torch.full((4,), 0.3), order=order), expected)


def test_build_augment_errors() -> None:
    with pytest.raises(ConfigError, match="unknown augmentation"):
        A.build_augment("autoaugment", CIFAR_MEAN, CIFAR_STD, 32)
    aug = A.build_augment("reference-cifar", CIFAR_MEAN, CIFAR_STD, 32)
    with pytest.raises(ValueError, match="uint8"):
        aug(torch.zeros(2, 32, 32, 3), _gen())
    with pytest.raises(ValueError, match="channels"):
        aug(torch.zeros(2, 32, 32, 1, dtype=torch.uint8).expand(2, 32, 32, 2).contiguous(), _gen())
    assert set(A.AUGMENTATIONS) == set(PIPELINES)


def test_pipelines_accept_numpy_backed_batches() -> None:
    """Batches stored as numpy arrays (as datasets often are) work once wrapped with from_numpy."""
    arr = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    out = A.build_augment("reference-cifar", CIFAR_MEAN, CIFAR_STD, 32)(torch.from_numpy(arr), _gen())
    assert out.shape == (4, 3, 32, 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", PIPELINES)
def test_pipelines_on_cuda(name: str) -> None:
    imgs = _uint8_batch(16, 32, 32, 3, seed=91).cuda()
    aug = A.build_augment(name, CIFAR_MEAN, CIFAR_STD, 32)
    out = aug(imgs, _gen(1, "cuda"))
    assert out.device == imgs.device and out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    assert torch.equal(aug(imgs, _gen(1, "cuda")), out)
    cpu = aug(imgs.cpu(), _gen(1))
    assert cpu.shape == out.shape

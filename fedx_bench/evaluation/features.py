"""Frozen-encoder feature extraction shared by all evaluation protocols.

Features are computed once per evaluation (test transform only: scale to [0, 1] and normalise), so
that the linear probe and kNN can run many cheap passes over a fixed (N, d) matrix instead of
re-running the backbone every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.no_grad()
def extract_features(
    encoder: torch.nn.Module,
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 512,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Run ``encoder`` in eval mode over uint8 channels-last ``images`` and return (N, d) float32 features.

    ``images`` is (N, H, W, C) uint8 as stored on disk ((N, H, W) is taken as one channel). Each batch is
    moved to ``device`` while still uint8 (4x less traffic), converted to NCHW float and normalised as
    ``(x / 255 - mean) / std`` -- the reference's ``ToTensor`` + ``Normalize`` test transform. The output
    is flattened with ``flatten(1)``, never ``squeeze``, so a final batch of one sample keeps its batch
    dimension (reference defect: ``h.squeeze()``). The train/eval flag of every submodule is restored
    afterwards, so calling this in the middle of training has no side effect on BatchNorm/Dropout.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (N, H, W, C), got dtype {images.dtype}")
    if images.dim() == 3:
        images = images.unsqueeze(-1)
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, H, W, C), got {tuple(images.shape)}")
    n, channels = images.shape[0], images.shape[-1]
    if n == 0:
        raise ValueError("cannot extract features from an empty image tensor")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std need {channels} entries (one per channel), got {len(mean)}/{len(std)}")

    device = torch.device(device)
    mean_t = torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, channels, 1, 1)
    std_t = torch.tensor(list(std), dtype=torch.float32, device=device).view(1, channels, 1, 1)

    modes = [(m, m.training) for m in encoder.modules()]
    encoder.eval()
    try:
        outputs = []
        for start in range(0, n, batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True)
            # No .contiguous(): the NHWC-strided batch stays channels-last, ~40% faster convs/pools on CPU.
            x = batch.permute(0, 3, 1, 2).float().div_(255.0)
            x = (x - mean_t) / std_t
            outputs.append(encoder(x).flatten(1).float())
        return torch.cat(outputs, dim=0)
    finally:
        for module, was_training in modes:
            module.training = was_training

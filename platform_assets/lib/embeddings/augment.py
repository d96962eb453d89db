"""Image augmentations as batched torch ops (they run on the device with the batch).

Parameters are drawn per sample from a generator seeded by (seed, example id, view), so a
sample's augmentation does not depend on which batch it lands in: same inputs and seed,
same pixels.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

from platform_assets.lib.embeddings.device import reproducible


def sample_seed(seed: int, example_id: int, view: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{example_id}:{view}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def draw_params(seed: int, example_ids: list[int], view: int) -> torch.Tensor:
    """(N, 7) uniform draws per sample: crop scale, aspect, x, y, flip, brightness, contrast/saturation."""
    rows = []
    for example_id in example_ids:
        g = torch.Generator().manual_seed(sample_seed(seed, example_id, view))
        rows.append(torch.rand(7, generator=g))
    return torch.stack(rows) if rows else torch.empty(0, 7)


def augment(images: torch.Tensor, params: torch.Tensor, min_scale: float = 0.4, jitter: float = 0.4) -> torch.Tensor:
    """Random resized crop + horizontal flip (one affine grid_sample) and colour jitter.

    `images`: (N, 3, H, W) floats in [0, 1]; `params`: from `draw_params`, on any device.
    """
    with reproducible():  # one image's mean is a single reduction, split across threads above 32k values
        return _augment(images, params, min_scale, jitter)


def _augment(images: torch.Tensor, params: torch.Tensor, min_scale: float, jitter: float) -> torch.Tensor:
    n = images.shape[0]
    p = params.to(images.device, images.dtype)
    area = min_scale + (1 - min_scale) * p[:, 0]
    log_ratio = (p[:, 1] - 0.5) * 2 * 0.2877  # aspect ratio in [3/4, 4/3]
    ratio = torch.exp(log_ratio)
    sx = torch.clamp(torch.sqrt(area * ratio), max=1.0)
    sy = torch.clamp(torch.sqrt(area / ratio), max=1.0)
    tx = (2 * p[:, 2] - 1) * (1 - sx)
    ty = (2 * p[:, 3] - 1) * (1 - sy)
    flip = torch.where(p[:, 4] < 0.5, -1.0, 1.0).to(images.dtype)
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = sx * flip
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    brightness = 1 + (2 * p[:, 5] - 1) * jitter
    contrast = 1 + (2 * p[:, 6] - 1) * jitter
    out = out * brightness.view(n, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast.view(n, 1, 1, 1) + mean
    gray = out.mean(dim=1, keepdim=True)
    out = (out - gray) * contrast.view(n, 1, 1, 1) + gray  # saturation moves with contrast
    return out.clamp(0, 1)

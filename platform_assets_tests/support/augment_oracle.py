"""The float augmentation the integer one (`platform_assets.lib.images.augment`) replaced: the
oracle it is held to (within 2 levels, `test_image_path.py`) and measured against
(`benchmarks/gpu_check.py`). Not production code: its bits depend on the device and the thread
count, which is why the production augmentation is integer arithmetic."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def float_reference(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The same augmentation in floats (affine `grid_sample` + jitter), as it was computed before."""
    x = images.float().div(255)
    n, _, h, w = x.shape
    p = params.to(x.device)
    area, ratio = 0.4 + 0.6 * p[:, 0], torch.exp((p[:, 1] - 0.5) * 2 * 0.2877)
    sx, sy = torch.sqrt(area * ratio).clamp(max=1), torch.sqrt(area / ratio).clamp(max=1)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = sx * torch.where(p[:, 4] < 0.5, -1.0, 1.0), (2 * p[:, 2] - 1) * (1 - sx)
    theta[:, 1, 1], theta[:, 1, 2] = sy, (2 * p[:, 3] - 1) * (1 - sy)
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    out = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    b, c = ((1 + (2 * p[:, i] - 1) * 0.4).view(n, 1, 1, 1) for i in (5, 6))
    out = out * b
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * c + mean
    gray = out.mean(dim=1, keepdim=True)
    return ((out - gray) * c + gray).clamp(0, 1).mul(255).round().to(torch.uint8)

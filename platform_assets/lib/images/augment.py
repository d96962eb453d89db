"""Image augmentations in integer arithmetic, so a view's pixels are the same bits on any device.

A shard's DVC hash is its data version: the same inputs must give the same bytes whether a
CPU or a GPU wrote them, at any batch size or thread count. Floating-point kernels differ
between devices (and bf16 autocast more so), so the pixel work is done in integers, which
every device computes exactly: per-sample coefficients are derived on the CPU from seeded
draws and quantized to fixed point (Q16 coordinates, Q12 factors, 8-bit bilinear weights),
then applied to uint8 images with gathers, multiplies, shifts and exact integer sums.

Parameters are drawn per sample from a generator seeded by (seed, example id, view), so a
sample's augmentation does not depend on which batch it lands in.
"""

from __future__ import annotations

import hashlib
import math

import torch

COORD_BITS = 16  # fixed-point source coordinates
WEIGHT_BITS = 8  # bilinear weights: 0..256
FACTOR_BITS = 12  # brightness / contrast factors
MAX_CHUNK_VALUES = 1 << 23  # pixels per channel-stack worked at once: bounds the int32 temporaries


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


def coefficients(
    params: torch.Tensor, height: int, width: int, min_scale: float = 0.4, jitter: float = 0.4
) -> torch.Tensor:
    """(N, 6) int64 fixed-point coefficients of a random resized crop + flip + colour jitter.

    Source column of output column j is (ax * j + bx) / 2**16 (rows likewise with ay, by), the
    same mapping as an affine `grid_sample` with `align_corners=False`; then brightness and
    contrast factors in Q12. Computed per sample with Python floats (IEEE sqrt, libm exp) on
    the CPU: no device kernel is involved, so the integers are the same everywhere."""
    one = 1 << COORD_BITS
    rows = []
    for p in params.detach().cpu().double().tolist():
        area = min_scale + (1 - min_scale) * p[0]
        ratio = math.exp((p[1] - 0.5) * 2 * 0.2877)  # aspect ratio in [3/4, 4/3]
        sx, sy = min(math.sqrt(area * ratio), 1.0), min(math.sqrt(area / ratio), 1.0)
        tx, ty = (2 * p[2] - 1) * (1 - sx), (2 * p[3] - 1) * (1 - sy)
        ax = sx * (-1.0 if p[4] < 0.5 else 1.0)
        bx = ax * (0.5 - width / 2) + (tx + 1) * width / 2 - 0.5
        ay = sy
        by = ay * (0.5 - height / 2) + (ty + 1) * height / 2 - 0.5
        brightness, contrast = 1 + (2 * p[5] - 1) * jitter, 1 + (2 * p[6] - 1) * jitter
        rows.append(
            [round(v * one) for v in (ax, bx, ay, by)] + [round(f * (1 << FACTOR_BITS)) for f in (brightness, contrast)]
        )
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, 6)


def augment(images: torch.Tensor, params: torch.Tensor, min_scale: float = 0.4, jitter: float = 0.4) -> torch.Tensor:
    """Random resized crop + horizontal flip (bilinear, edge pixels repeated) and colour jitter.

    `images`: (N, 3, H, W) uint8 on any device; `params`: from `draw_params`. Returns uint8 on
    the images' device, bit-identical across devices, batch sizes and thread counts."""
    n, _, height, width = images.shape
    coeffs = coefficients(params, height, width, min_scale, jitter).to(images.device)
    chunk = max(1, MAX_CHUNK_VALUES // (3 * height * width))
    out = [_apply(images[s : s + chunk], coeffs[s : s + chunk]) for s in range(0, n, chunk)]
    return torch.cat(out) if out else images.clone()


def _axis(a: torch.Tensor, b: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (lower, upper, clamped to the image) and the upper one's 8-bit weight."""
    pos = a[:, None] * torch.arange(size, device=a.device) + b[:, None]  # (N, size) Q16
    low = pos >> COORD_BITS
    frac = (pos - (low << COORD_BITS)) >> (COORD_BITS - WEIGHT_BITS)
    return low.clamp(0, size - 1), (low + 1).clamp(0, size - 1), frac.to(torch.int32)


def _shift_round(x: torch.Tensor, bits: int) -> torch.Tensor:
    return (x + (1 << (bits - 1))) >> bits


def _apply(images: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Bilinear crop (columns, then rows), then jitter as one affine map of each pixel.

    With v a pixel, g its channels' mean and m the image's mean, brightness b after contrast and
    saturation (both c) is b * (c^2 (v - g) + c (g - m) + m): the float pipeline's algebra,
    rounded once per stage, every intermediate provably inside int32."""
    n, channels, height, width = images.shape
    x0, x1, fx = _axis(c[:, 0], c[:, 1], width)
    y0, y1, fy = _axis(c[:, 2], c[:, 3], height)
    full = 1 << WEIGHT_BITS
    shape = (n, channels, height, width)

    def cols(index: torch.Tensor) -> torch.Tensor:
        return torch.gather(images, 3, index[:, None, None, :].expand(shape)).to(torch.int32)

    wx = fx[:, None, None, :]
    across = cols(x0) * (full - wx) + cols(x1) * wx  # Q8: at most 65,280

    def rows(index: torch.Tensor) -> torch.Tensor:
        return torch.gather(across, 2, index[:, None, :, None].expand(shape))

    wy = fy[:, None, :, None]
    v = _shift_round(rows(y0) * (full - wy) + rows(y1) * wy, WEIGHT_BITS)  # Q8
    count = channels * height * width
    m = torch.div(v.sum(dim=(1, 2, 3), keepdim=True) + count // 2, count, rounding_mode="floor").to(torch.int32)
    g = torch.div(v.sum(dim=1, keepdim=True, dtype=torch.int32), channels, rounding_mode="floor")
    b, k = (c[:, i].to(torch.int32).view(n, 1, 1, 1) for i in (4, 5))
    k2 = _shift_round(k * k, FACTOR_BITS)
    # |terms| < 5.3e8 + 3.8e8 + 2.7e8: int32
    t = _shift_round(k2 * (v - g) + k * (g - m) + (m << FACTOR_BITS), FACTOR_BITS)
    return _shift_round(t * b, FACTOR_BITS + WEIGHT_BITS).clamp_(0, 255).to(torch.uint8)

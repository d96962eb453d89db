"""JPEG images drawn from a few visual classes and styles, so content carries signal."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from PIL import Image

SIZE = 64
CLASSES = ("sunset", "beach", "forest", "city", "food", "pet")  # the order the world's effects follow
STYLES = ("plain", "vivid", "faded", "noisy")
GRAIN = 6.0  # standard deviation of the grain added above 64 px
_PALETTE = {  # (top colour, bottom colour, accent colour)
    "sunset": ((250, 120, 40), (90, 30, 80), (255, 220, 90)),
    "beach": ((120, 190, 240), (230, 210, 150), (30, 110, 200)),
    "forest": ((60, 120, 60), (30, 60, 30), (20, 40, 15)),
    "city": ((40, 40, 70), (90, 90, 100), (250, 230, 120)),
    "food": ((230, 220, 200), (200, 170, 140), (190, 60, 40)),
    "pet": ((200, 190, 170), (150, 130, 110), (100, 70, 40)),
}


def render(
    rng: np.random.Generator, visual_class: str, style: str, width: int = SIZE, height: int = SIZE
) -> np.ndarray:
    """An RGB uint8 (height, width, 3) image of one class in one style.

    Shapes are drawn on a 64-unit grid stretched to the size, so a class looks the same at any
    size. Above 64 px, sensor-like grain is added: real photos carry fine detail, and JPEG
    decode cost (what the benchmarks measure) grows with it — a 640x480 image is ~45 KB at quality 85."""
    photo_sized = (width, height) != (SIZE, SIZE)
    dtype = np.float32 if photo_sized else np.float64  # float32 halves the work of a 640x480 image
    top, bottom, accent = (np.array(c, dtype) for c in _PALETTE[visual_class])
    t = np.linspace(0, 1, height, dtype=dtype)[:, None, None]
    yy, xx = np.arange(height)[:, None], np.arange(width)[None, :]  # a column and a row: masks broadcast
    if photo_sized:
        yy, xx = (yy * SIZE / height).astype(dtype), (xx * SIZE / width).astype(dtype)
    cy, cx = rng.integers(16, 48, size=2)
    if visual_class == "sunset":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(40, 120)
    elif visual_class == "beach":
        mask = yy < SIZE // 3 + 3 * np.sin(xx / 4 + rng.random() * 6)
    elif visual_class == "forest":
        mask = (xx % rng.integers(6, 10)) < 3
    elif visual_class == "city":
        mask = ((xx // 6) % 2 == 0) & (yy > rng.integers(10, 30)) & ((yy % 5) < 2)
    elif visual_class == "food":
        mask = (yy - cy) ** 2 / 1.5 + (xx - cx) ** 2 < rng.integers(80, 200)
    else:  # pet: two ears and a head
        mask = (
            ((yy - cy) ** 2 + (xx - cx) ** 2 < 150)
            | ((yy - cy + 12) ** 2 + (xx - cx - 7) ** 2 < 20)
            | ((yy - cy + 12) ** 2 + (xx - cx + 7) ** 2 < 20)
        )
    # The style maps each pixel alone, so it is applied to the two colours a pixel can take
    # (the row's gradient and the accent) before they are spread, a channel plane at a time.
    gradient, accent = _styled(top * (1 - t) + bottom * t, style), _styled(accent, style)
    mask = np.broadcast_to(mask, (height, width))
    planes = np.empty((3, height, width), dtype)
    for c in range(3):
        planes[c] = gradient[:, :, c]
        planes[c][mask] = accent[c]
    if style == "noisy":
        planes += _noise(rng, 40, (height, width))
    if photo_sized:
        planes += _noise(rng, GRAIN, (height, width))
    channels = np.clip(planes, 0, 255, out=planes).astype(np.uint8)
    return np.array(Image.merge("RGB", [Image.fromarray(c) for c in channels]))  # interleaved in C: 3x faster


def _styled(colours: np.ndarray, style: str) -> np.ndarray:
    if style == "vivid":
        return np.clip((colours - 128) * 1.5 + 128, 0, 255)
    if style == "faded":
        return colours * 0.5 + 110
    return colours


def _noise(rng: np.random.Generator, sigma: float, size: tuple[int, int]) -> np.ndarray:
    """Gaussian noise as (3, height, width) planes. At 64 px it is drawn per image. Above, it is
    a window at a random offset of one seeded field twice the size: drawing 900,000 normals per
    640x480 image cost 14 ms, five times its JPEG encode, and made a 100x lake take hours."""
    if size == (SIZE, SIZE):
        return rng.normal(0, sigma, (*size, 3)).transpose(2, 0, 1)
    oy, ox = rng.integers(0, size[0]), rng.integers(0, size[1])
    return _noise_field(size, sigma)[:, oy : oy + size[0], ox : ox + size[1]]


@cache
def _noise_field(size: tuple[int, int], sigma: float) -> np.ndarray:
    height, width = size
    return sigma * np.random.default_rng(0).standard_normal((3, 2 * height, 2 * width), dtype=np.float32)


def encode_jpeg(pixels: np.ndarray, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()

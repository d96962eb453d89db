"""JPEG images drawn from a few visual classes and styles, so content carries signal."""

from __future__ import annotations

import io

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
    top, bottom, accent = (np.array(c, float) for c in _PALETTE[visual_class])
    t = np.linspace(0, 1, height)[:, None, None]
    img = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()
    rows, cols = np.mgrid[0:height, 0:width]
    yy, xx = (rows, cols) if (width, height) == (SIZE, SIZE) else (rows * SIZE / height, cols * SIZE / width)
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
    img[mask] = accent
    if style == "vivid":
        img = np.clip((img - 128) * 1.5 + 128, 0, 255)
    elif style == "faded":
        img = img * 0.5 + 110
    elif style == "noisy":
        img = img + rng.normal(0, 40, img.shape)
    if (width, height) != (SIZE, SIZE):
        img = img + rng.normal(0, GRAIN, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode_jpeg(pixels: np.ndarray, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()

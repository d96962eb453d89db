"""JPEG images drawn from a few visual classes and styles, so content carries signal."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SIZE = 64
_PALETTE = {  # (top colour, bottom colour, accent colour)
    "sunset": ((250, 120, 40), (90, 30, 80), (255, 220, 90)),
    "beach": ((120, 190, 240), (230, 210, 150), (30, 110, 200)),
    "forest": ((60, 120, 60), (30, 60, 30), (20, 40, 15)),
    "city": ((40, 40, 70), (90, 90, 100), (250, 230, 120)),
    "food": ((230, 220, 200), (200, 170, 140), (190, 60, 40)),
    "pet": ((200, 190, 170), (150, 130, 110), (100, 70, 40)),
}


def render(rng: np.random.Generator, visual_class: str, style: str) -> np.ndarray:
    """An RGB uint8 image of one class in one style."""
    top, bottom, accent = (np.array(c, float) for c in _PALETTE[visual_class])
    t = np.linspace(0, 1, SIZE)[:, None, None]
    img = np.broadcast_to(top * (1 - t) + bottom * t, (SIZE, SIZE, 3)).copy()
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
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
    return np.clip(img, 0, 255).astype(np.uint8)


def encode_jpeg(pixels: np.ndarray, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()

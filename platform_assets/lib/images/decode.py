"""One image's bytes to (3, size, size) uint8 pixels on the CPU: what the batch loaders
(`batches`) decode with, and what nvJPEG's rejects fall back to (`gpu_decode`)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from platform_assets.lib.images.sizes import DEFAULT_IMAGE_SIZE


def decode(data: bytes, size: int = DEFAULT_IMAGE_SIZE) -> torch.Tensor:
    """(3, size, size) uint8: the image's centred square, resized — a quarter of the bytes of
    floats to move to the device, where `as_float` converts the whole batch. JPEGs are scaled
    down in the DCT domain first (libjpeg's 1/2, 1/4, 1/8 decode via Pillow's `draft`), so a
    640x480 photo read at 224 px decodes a quarter of its pixels. Raises ValueError for
    anything not a readable image."""
    if not data:
        raise ValueError("empty file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (size, size))  # the smallest DCT scale still at least size x size
            rgb = img.convert("RGB")
            width, height = rgb.size
            side = min(width, height)
            box = ((width - side) // 2, (height - side) // 2, (width - side) // 2 + side, (height - side) // 2 + side)
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, box=box)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"not a readable image: {exc}") from exc
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def as_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images to floats in [0, 1], on whatever device the batch is."""
    return batch.float().div_(255)


def decode_or_error(data: bytes, size: int) -> tuple[torch.Tensor, str]:
    """The decoded image and "", or a zero image and why it could not be read."""
    try:
        return decode(data, size), ""
    except ValueError as exc:
        return torch.zeros(3, size, size, dtype=torch.uint8), str(exc)

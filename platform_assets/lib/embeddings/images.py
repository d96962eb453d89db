"""Decoding and resizing JPEGs in DataLoader workers; broken images are reported, not fatal."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from platform_assets.lib.embeddings.device import loader_settings

IMAGE_SIZE = 64


def decode(data: bytes, size: int = IMAGE_SIZE) -> torch.Tensor:
    """(3, size, size) uint8 tensor — a quarter of the bytes of floats to move to the device,
    where `as_float` converts the whole batch; raises ValueError for anything not a readable image."""
    if not data:
        raise ValueError("empty file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (size, size))  # JPEG: let the decoder downscale by DCT when it can
            rgb = img.convert("RGB")
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"not a readable image: {exc}") from exc
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def as_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images to floats in [0, 1], on whatever device the batch is."""
    return batch.float().div_(255)


class JpegDataset(Dataset):
    """Items are (index, image tensor, error); a broken image gives a zero tensor and its error."""

    def __init__(self, blobs: list[bytes], size: int = IMAGE_SIZE) -> None:
        self.blobs, self.size = blobs, size

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, str]:
        try:
            return i, decode(self.blobs[i], self.size), ""
        except ValueError as exc:
            return i, torch.zeros(3, self.size, self.size, dtype=torch.uint8), str(exc)


def image_batches(blobs: list[bytes], batch_size: int, device: torch.device, workers: int) -> DataLoader:
    return DataLoader(JpegDataset(blobs), batch_size=batch_size, shuffle=False, **loader_settings(device, workers))

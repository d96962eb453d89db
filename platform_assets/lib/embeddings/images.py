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
    """(3, size, size) float tensor in [0, 1]; raises ValueError for anything not a readable image."""
    if not data:
        raise ValueError("empty file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"not a readable image: {exc}") from exc
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)


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
            return i, torch.zeros(3, self.size, self.size), str(exc)


def image_batches(blobs: list[bytes], batch_size: int, device: torch.device, workers: int) -> DataLoader:
    return DataLoader(JpegDataset(blobs), batch_size=batch_size, shuffle=False, **loader_settings(device, workers))

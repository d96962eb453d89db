"""Where torch work runs, and the settings that make it fast there."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def pick_device(requested: str = "auto") -> torch.device:
    """`auto` is CUDA when a GPU is present, else the CPU; asking for CUDA without one fails fast."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but no CUDA GPU is visible: use 'auto' or 'cpu'")
    return device


@contextlib.contextmanager
def inference_mode(device: torch.device) -> Iterator[None]:
    """No autograd; bf16 autocast on CUDA (fp32 on CPU, where bf16 matmuls are not faster here)."""
    with torch.inference_mode():
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield
        else:
            yield


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a (pinned, on CUDA) batch without blocking, so the copy overlaps the previous batch's compute."""
    return batch.to(device, non_blocking=device.type == "cuda")


def loader_settings(device: torch.device, workers: int) -> dict:
    """DataLoader arguments: decode in worker processes; pinned memory only when a GPU reads it."""
    return {
        "num_workers": workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": False,
        **({"prefetch_factor": 4} if workers else {}),
    }

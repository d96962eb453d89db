"""Where torch work runs, the settings that make it fast there, and the one that makes a CPU
result the same bits on any machine: torch's intra-op thread count decides how matmuls,
convolutions and reductions are split and summed (for a small batch, even in a forward
pass), so every step whose output is hashed or pinned runs inside `reproducible`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# Intra-op threads of every hashed or pinned CPU step (encoder training, image and title
# embeddings, augmentation, model training): a fixed count, not the machine's, so any core
# count gives the same bits. 2 costs nothing on the 2-core CI machine and runs as fast as 1
# thread on a single core; a bigger machine leaves its other cores idle during these steps.
REPRODUCIBLE_THREADS = 2


@contextlib.contextmanager
def reproducible(algorithms: bool = False) -> Iterator[None]:
    """Run torch on exactly `REPRODUCIBLE_THREADS` intra-op threads; with `algorithms`, also
    with torch's deterministic algorithms (a warning where an op has none, as on CUDA).
    The previous settings are restored on exit, so the rest of the process is untouched."""
    threads = torch.get_num_threads()
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(REPRODUCIBLE_THREADS)
    switch = algorithms and not previous[0]  # an existing setting (strict or not) is kept as is
    if switch:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        if switch:
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.set_num_threads(threads)


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

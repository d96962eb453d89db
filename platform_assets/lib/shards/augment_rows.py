"""Tabular and text augmentations, seeded per (example id, view) like the image ones."""

from __future__ import annotations

import numpy as np

from platform_assets.lib.images.augment import sample_seed


def rng_for(seed: int, example_id: int, view: int) -> np.random.Generator:
    return np.random.default_rng(sample_seed(seed, example_id, view))


def drop_cells(values: np.ndarray, rng: np.random.Generator, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Hide a share of cells (as if missing): returns (values with hidden cells 0, mask 1 = present)."""
    mask = (rng.random(values.shape) >= p).astype(np.float32)
    return (values * mask).astype(np.float32), mask


def perturb_title(title: str, rng: np.random.Generator, p_drop: float, p_swap: float) -> str:
    """Word dropout, then swaps of neighbouring words; never drops every word."""
    words = title.split()
    kept = [w for w in words if rng.random() >= p_drop] or words[:1]
    for i in range(len(kept) - 1):
        if rng.random() < p_swap:
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return " ".join(kept)

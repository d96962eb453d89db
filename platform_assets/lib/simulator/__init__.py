"""A seeded photo-app lake: app database, JPEG images and hourly JSONL activity logs.

The lake generator (Polars, SQLAlchemy) loads on first use, so `simulator.images` alone needs
only numpy and Pillow: `benchmarks/gpu_check.py` renders photos on a GPU machine without them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from platform_assets.lib.simulator.generate import LakeScale, append_hour, generate_lake

__all__ = ["LakeScale", "append_hour", "generate_lake"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("platform_assets.lib.simulator.generate"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

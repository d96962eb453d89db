"""A seeded photo-app lake: app database, JPEG images and hourly JSONL activity logs."""

from platform_assets.lib.simulator.generate import LakeScale, append_hour, generate_lake

__all__ = ["LakeScale", "append_hour", "generate_lake"]

"""What `test_parallel_pins_each_land_as_their_own_commit`'s spawned processes run: one pin in
a registry. A module of its own so that each process imports the registry alone (~0.4 s), not
the test module (dagster, torch, boto3: ~4 s of CPU in each of six processes at once)."""

from pathlib import Path

from platform_assets.lib.registry import Registry, shard_dir


def pin(args: tuple[str, str, str]) -> str:
    root, remote, day = args
    registry = Registry(Path(root), remote)
    return registry.pin(shard_dir(day), f"shards {day}").md5

"""A partition's bytes by hash: the registry's DVC cache where it holds a good copy, else the
DVC remote (streamed into a shard cache, every object checked against its hash), so a diff
works in a fresh clone with an empty cache and reads nothing twice it already has."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.registry import Registry, cache_object
from platform_assets.lib.shards.remote import RemoteShard, RemoteShardError, ShardCache, read_checked

SHARD_CACHE_BYTES = 4 * 2**30  # remote shards kept for the next diff; a diff needs room for one


@dataclass(frozen=True)
class PartitionFiles:
    """A partition's shards in index order (their names, md5s and sha256s from its listing and index)."""

    md5: str
    shards: list[RemoteShard]

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.shards)


@dataclass(frozen=True)
class ObjectSource:
    cache: Path  # the registry's DVC cache (`files/md5/ab/cdef…`, as on the remote)
    remote: LakeStore
    shard_cache: ShardCache

    @classmethod
    def of(cls, registry: Registry, shard_cache: Path | None = None) -> ObjectSource:
        where = shard_cache or registry.root / ".dvc" / "tmp" / "diff-shards"  # DVC and git ignore .dvc/tmp
        return cls(registry.cache, registry.remote_store(), ShardCache(where, SHARD_CACHE_BYTES))

    def read(self, md5: str, what: str) -> bytes:
        """A small object (listing, index, manifest), checked against its md5; a bad cache copy
        is passed over for the remote's."""
        if cache_object(self.cache, md5).is_file():
            try:
                return read_checked(LakeStore(str(self.cache)), md5, what)
            except RemoteShardError:
                pass
        return read_checked(self.remote, md5, what)

    def partition(self, md5: str) -> PartitionFiles:
        listing = json.loads(self.read(md5, f"the listing of partition {md5}"))
        md5s = {entry["relpath"]: entry["md5"] for entry in listing}
        index = json.loads(self.read(md5s["index.json"], f"index.json of partition {md5}"))
        return PartitionFiles(
            md5,
            [
                RemoteShard(
                    md5,
                    s["name"],
                    md5s[s["name"]],
                    s["sha256"],
                    s["bytes"],
                    s["samples"],
                    self.remote,
                    self.shard_cache,
                )
                for s in index["shards"]
            ],
        )

    def open(self, shard: RemoteShard) -> pa.NativeFile:
        """The DVC cache's copy when its sha256 is the index's, else the remote's (checked)."""
        local = cache_object(self.cache, shard.md5)
        if local.is_file():
            mapped = pa.memory_map(str(local))
            if hashlib.sha256(mapped.read_buffer()).hexdigest() == shard.sha256:
                mapped.seek(0)
                return mapped
        return shard.open()

"""Training shards streamed from the DVC remote by hash: no git checkout, no `dvc pull`.

A partition's DVC hash names its directory listing on the remote (DVC 3's `files/md5/ab/
cdef….dir`), the listing names index.json and every shard by md5, and index.json gives each
shard's sample count and sha256. Every link is checked: the listing and the index against the
md5 that names them, each shard against its sha256 when it enters the cache and when a process
first opens it there. Shards land in a local cache with a size limit, shared by every reader on
the machine under a file lock, least recently used evicted.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import yaml
from filelock import FileLock

from platform_assets.lib.lake_store import TEMP_PREFIX, LakeStore
from platform_assets.lib.registry import model_dir, model_tag, object_key

STALE_TEMP_S = 3600  # a download older than this was left by a killed reader


class RemoteShardError(RuntimeError):
    """The remote lacks an object, or holds bytes that do not hash to their name."""


class CacheTooSmallError(ValueError):
    """A shard larger than the whole cache: the setting must change, retrying cannot help."""


def read_checked(remote: LakeStore, md5: str, what: str) -> bytes:
    """A small object (listing, index, manifest), checked against the md5 that names it."""
    key = object_key(md5)
    try:
        data = remote.read_bytes(key)
    except FileNotFoundError:
        raise RemoteShardError(f"the DVC remote has no {what} ({remote.uri(key)}): push it (`dvc push`)") from None
    if (got := hashlib.md5(data).hexdigest()) != md5.removesuffix(".dir"):
        raise RemoteShardError(f"{what} on the DVC remote is corrupt: {remote.uri(key)} has md5 {got}")
    return data


@dataclass
class ShardCache:
    """A directory of verified shards named by sha256, at most `max_bytes` in all."""

    directory: Path
    max_bytes: int
    _verified: set[str] = field(default_factory=set, repr=False)  # this process's checks of cached files

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _lock(self, name: str = "cache") -> FileLock:
        return FileLock(str(self.directory / f".{name}.lock"))

    def open(self, shard: RemoteShard) -> pa.MemoryMappedFile:
        """The shard's bytes, fetched and checked if the cache does not hold them good. A memory
        map stays readable after another reader evicts the file, so eviction never breaks a reader."""
        final = self.directory / shard.sha256
        with self._lock(f"fetch-{shard.sha256}"):  # one download per shard, however many readers want it
            with self._lock():
                cached = pa.memory_map(str(final)) if final.is_file() else None
                if cached is not None:
                    os.utime(final)  # least recently used = oldest modification time
            if cached is not None:
                if shard.sha256 in self._verified or hashlib.sha256(cached.read_buffer()).hexdigest() == shard.sha256:
                    self._verified.add(shard.sha256)
                    cached.seek(0)
                    return cached
                final.unlink()  # changed on disk since it was checked: fetched again below
            return self._fetch(shard, final)

    def _fetch(self, shard: RemoteShard, final: Path) -> pa.MemoryMappedFile:
        if shard.size > self.max_bytes:
            raise CacheTooSmallError(
                f"shard {shard.label} is {shard.size} bytes, more than the whole cache "
                f"({self.max_bytes} bytes in {self.directory}): raise the cache size"
            )
        temp = self.directory / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        key = object_key(shard.md5)
        try:
            digest = hashlib.sha256()
            with temp.open("wb") as f:
                shard.remote.stream(key, lambda chunk: (digest.update(chunk), f.write(chunk)))
            if digest.hexdigest() != shard.sha256:
                raise RemoteShardError(
                    f"shard {shard.label} on the DVC remote is corrupt: {shard.remote.uri(key)} has sha256 "
                    f"{digest.hexdigest()}, its index records {shard.sha256}; push a good copy from a "
                    "registry that has one"
                )
            with self._lock():
                self._evict(room_for=shard.size)
                temp.replace(final)
                self._verified.add(shard.sha256)
                return pa.memory_map(str(final))
        except FileNotFoundError:
            raise RemoteShardError(f"the DVC remote has no shard {shard.label} ({shard.remote.uri(key)})") from None
        finally:
            temp.unlink(missing_ok=True)

    def _evict(self, room_for: int) -> None:
        now = time.time()
        files = []
        for path in self.directory.iterdir():
            try:
                stat = path.stat()
            except FileNotFoundError:  # another reader's download, renamed or removed since the listing
                continue
            if path.name.startswith(TEMP_PREFIX) and now - stat.st_mtime > STALE_TEMP_S:
                path.unlink(missing_ok=True)
            elif not path.name.startswith("."):
                files.append((stat.st_mtime, stat.st_size, path))
        used = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if used + room_for <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            self._verified.discard(path.name)
            used -= size


@dataclass(frozen=True)
class RemoteShard:
    """One shard on the DVC remote: the dataset opens it through the cache."""

    partition: str  # the partition's DVC hash
    name: str
    md5: str
    sha256: str
    size: int
    samples: int
    remote: LakeStore
    cache: ShardCache

    @property
    def label(self) -> str:
        return f"{self.partition}/{self.name}"

    def open(self) -> pa.NativeFile:
        return self.cache.open(self)


def remote_shards(remote: LakeStore, partitions: list[str], cache: ShardCache) -> list[RemoteShard]:
    """The shards of these partitions (DVC hashes of shard directories), in index order."""
    shards = []
    for partition in partitions:
        listing = json.loads(read_checked(remote, partition, f"the listing of partition {partition}"))
        md5s = {entry["relpath"]: entry["md5"] for entry in listing}
        index = json.loads(read_checked(remote, md5s["index.json"], f"index.json of partition {partition}"))
        shards += [
            RemoteShard(partition, s["name"], md5s[s["name"]], s["sha256"], s["bytes"], s["samples"], remote, cache)
            for s in index["shards"]
        ]
    return shards


def training_partitions(manifest: dict) -> list[str]:
    """The DVC hashes a model trained on: every partition of its manifest but the holdout day."""
    holdout = manifest["metrics"]["holdout_day"]
    return [s["md5"] for s in manifest["shards"] if s["day"] != holdout]


def manifest_shards(remote: LakeStore, manifest: dict, cache: ShardCache) -> list[RemoteShard]:
    """A model's training shards, each checked against the sha256 its manifest recorded."""
    shards = remote_shards(remote, training_partitions(manifest), cache)
    recorded = {(s["md5"], f["name"]): f["sha256"] for s in manifest["shards"] for f in s["files"]}
    if wrong := [s.label for s in shards if recorded.get((s.partition, s.name)) != s.sha256]:
        raise RemoteShardError(f"the remote's shard index differs from the model's manifest for {wrong}")
    return shards


def fetch_manifest(registry_git: str, remote: LakeStore, model_id: str) -> dict:
    """A model's manifest from its tag in the registry's git repository (a fetch of that tag
    into a temporary bare repository, no checkout) and the manifest's bytes on the DVC remote."""
    tag = model_tag(model_id)
    with tempfile.TemporaryDirectory(prefix="manifest-") as bare:
        git = ["git", "-C", bare]
        subprocess.run(["git", "init", "-q", "--bare", bare], check=True, capture_output=True)
        fetched = subprocess.run(
            [*git, "fetch", "-q", registry_git, f"refs/tags/{tag}:refs/tags/{tag}"], capture_output=True, text=True
        )
        if fetched.returncode:
            raise RemoteShardError(f"no model {model_id!r} in the registry {registry_git}: {fetched.stderr.strip()}")
        shown = subprocess.run([*git, "show", f"{tag}:{model_dir(model_id)}.dvc"], capture_output=True, text=True)
        if shown.returncode:
            raise RemoteShardError(f"tag {tag} in {registry_git} holds no {model_dir(model_id)}.dvc")
    md5 = yaml.safe_load(shown.stdout)["outs"][0]["md5"]
    listing = {e["relpath"]: e["md5"] for e in json.loads(read_checked(remote, md5, f"model {model_id}'s listing"))}
    return json.loads(read_checked(remote, listing["manifest.json"], f"model {model_id}'s manifest"))

"""Training straight from the DVC remote by hash (a real S3 API server, real DVC pushes): no
git checkout, a cache smaller than the window, corruption caught and named."""

from __future__ import annotations

import json
import shutil

import boto3
import pytest

from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.registry import Registry, model_dir, model_tag, object_key, shard_dir
from platform_assets.lib.shards.reader import ShardDataset, ShardLoader, local_shards
from platform_assets.lib.shards.remote import (
    CacheTooSmallError,
    RemoteShardError,
    ShardCache,
    fetch_manifest,
    manifest_shards,
    remote_shards,
)
from platform_assets_tests.support.ddp_reader_job import LAYOUT
from platform_assets_tests.support.helpers import synthetic_shards
from platform_assets_tests.support.s3_server import make_bucket, s3_server
from platform_assets_tests.test_reader import assert_one_epoch_across_a_kill, epoch, ids

pytestmark = pytest.mark.slow
DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
REMOTE = "s3://dvc-store/registry"


@pytest.fixture(scope="module")
def pinned(tmp_path_factory):
    """Three days of shards pinned by the registry to a DVC remote on a real S3 API server."""
    root = tmp_path_factory.mktemp("remote")
    with s3_server() as endpoint:
        make_bucket(endpoint, "dvc-store")
        registry = Registry(root / "registry", REMOTE, s3_endpoint_url=endpoint)
        registry.ensure()
        hashes = {}
        for day, made in zip(DAYS, synthetic_shards(root / "made", days=3, target_bytes=200_000), strict=True):
            shutil.move(made, registry.root / shard_dir(day))
            hashes[day] = registry.pin(shard_dir(day), f"shards {day}").md5
        yield registry, endpoint, hashes


def local_epoch(registry: Registry, days: list[str]) -> list[int]:
    return epoch(local_shards([registry.root / shard_dir(d) for d in days]))


def test_streams_by_hash_through_a_cache_smaller_than_the_window(pinned, tmp_path) -> None:
    registry, endpoint, hashes = pinned
    remote = LakeStore(REMOTE, s3_endpoint_url=endpoint)
    shards = remote_shards(remote, list(hashes.values()), ShardCache(tmp_path / "probe", 2**30))
    window = sum(s.size for s in shards)
    limit = 5 * max(s.size for s in shards)  # a span (2 shards) and a margin; the window is 45 shards
    assert limit < window / 5
    cache = ShardCache(tmp_path / "cache", limit)
    dataset = ShardDataset(remote_shards(remote, list(hashes.values()), cache), seed=7, **LAYOUT)
    expected = local_epoch(registry, DAYS)
    assert ids(ShardLoader(dataset, batch_size=8, num_workers=2)) == expected  # the same samples, the same order
    cached = [p for p in cache.directory.iterdir() if not p.name.startswith(".")]
    assert 0 < len(cached) and sum(p.stat().st_size for p in cached) <= limit
    dataset.set_epoch(1)
    assert sorted(ids(ShardLoader(dataset, batch_size=8))) == sorted(expected)  # evicted shards come back
    with pytest.raises(CacheTooSmallError, match="raise the cache size"):
        next(iter(ShardDataset(remote_shards(remote, [hashes[DAYS[0]]], ShardCache(tmp_path / "tiny", 1000)))))


def test_a_distributed_job_streams_killed_and_resumed_sharing_one_cache(pinned, tmp_path) -> None:
    registry, endpoint, hashes = pinned
    probe = remote_shards(LakeStore(REMOTE, s3_endpoint_url=endpoint), list(hashes.values()), ShardCache(tmp_path, 1))
    source = ["--remote", REMOTE, "--endpoint", endpoint, "--partitions", *hashes.values()]
    source += ["--cache", str(tmp_path / "shared-cache"), "--cache-bytes", str(8 * max(s.size for s in probe))]
    assert_one_epoch_across_a_kill(tmp_path, source, local_epoch(registry, DAYS), (2, 2), (3, 0))


def flip_byte(endpoint: str, key: str) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bucket, prefix = REMOTE.removeprefix("s3://").split("/", 1)
    data = bytearray(s3.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read())
    data[len(data) // 2] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=bytes(data))


def test_corruption_on_the_remote_or_in_the_cache_is_caught(pinned, tmp_path) -> None:
    registry, endpoint, hashes = pinned
    remote = LakeStore(REMOTE, s3_endpoint_url=endpoint)
    day = DAYS[2]
    cache = ShardCache(tmp_path / "cache", 2**30)
    shards = remote_shards(remote, [hashes[day]], cache)
    good = epoch(shards)
    first = shards[0]
    on_disk = cache.directory / first.sha256
    data = bytearray(on_disk.read_bytes())
    data[100] ^= 1
    on_disk.write_bytes(bytes(data))  # a byte flipped in the local cache: a new process re-checks and re-fetches
    assert epoch(remote_shards(remote, [hashes[day]], ShardCache(cache.directory, 2**30))) == good
    flip_byte(endpoint, object_key(first.md5))  # then on the remote itself
    fresh = ShardCache(tmp_path / "fresh", 2**30)
    with pytest.raises(RemoteShardError, match=rf"{first.partition}/{first.name} on the DVC remote is corrupt: s3://"):
        list(ShardLoader(ShardDataset(remote_shards(remote, [hashes[day]], fresh), seed=7, **LAYOUT), 8, num_workers=2))
    flip_byte(endpoint, object_key(hashes[day]))
    with pytest.raises(RemoteShardError, match=rf"listing of partition {hashes[day]} on the DVC remote is corrupt"):
        remote_shards(remote, [hashes[day]], fresh)
    with pytest.raises(RemoteShardError, match="the DVC remote has no"):
        remote_shards(remote, ["0" * 32 + ".dir"], fresh)


def test_a_model_id_names_its_training_data(pinned, tmp_path) -> None:
    """From the model's tag (fetched, not checked out) to its manifest on the remote to its shards."""
    registry, endpoint, hashes = pinned
    days = DAYS[:2]
    entries = []
    for day in days:
        index = json.loads((registry.root / shard_dir(day) / "index.json").read_text())["shards"]
        files = [{"name": s["name"], "sha256": s["sha256"]} for s in index]
        entries.append({"day": day, "md5": hashes[day], "files": files})
    manifest = {"model_id": "m1", "shards": entries, "metrics": {"holdout_day": days[-1]}}
    out = registry.root / model_dir("m1")
    out.mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps(manifest))
    registry.pin_model(model_dir("m1"), model_tag("m1"), "model m1", {shard_dir(d): hashes[d] for d in days})
    remote = LakeStore(REMOTE, s3_endpoint_url=endpoint)
    fetched = fetch_manifest(str(registry.root), remote, "m1")
    assert fetched == manifest
    shards = manifest_shards(remote, fetched, ShardCache(tmp_path / "cache", 2**30))
    assert {s.partition for s in shards} == {hashes[days[0]]}  # the holdout day is not training data
    assert epoch(shards) == local_epoch(registry, days[:1])
    with pytest.raises(RemoteShardError, match="no model 'nope'"):
        fetch_manifest(str(registry.root), remote, "nope")

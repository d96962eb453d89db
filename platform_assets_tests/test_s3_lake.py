"""The same assets and sensor with the lake on S3, read in place through a real S3 API server."""

from pathlib import Path

import dagster as dg
import pytest

from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.lake.sensors import new_logs_sensor
from platform_assets.defs.resources import AppDatabaseResource, LakeResource
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.lake_layout import partition_key, staging_key
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.simulator import LakeScale, generate_lake
from platform_assets_tests.support.s3_server import make_bucket, s3_server

pytestmark = pytest.mark.slow

SCALE = LakeScale(users=40, photos=80, days=2, events_per_day=2000, defect_rate=0.01, seed=5)


@pytest.fixture(scope="module")
def s3_lake(tmp_path_factory):
    with s3_server() as endpoint:
        make_bucket(endpoint, "lake-bucket")
        store = LakeStore("s3://lake-bucket/prod/lake", s3_endpoint_url=endpoint)
        db = f"sqlite:///{Path(tmp_path_factory.mktemp('s3db')) / 'app.db'}"
        manifest = generate_lake(store, db, SCALE)
        resources = {
            "lake": LakeResource(root=store.root, s3_endpoint_url=endpoint),
            "app_db": AppDatabaseResource(url=db),
        }
        yield store, manifest, resources


def test_graph_materializes_with_the_lake_on_s3(s3_lake) -> None:
    store, manifest, resources = s3_lake
    assert dg.materialize([raw_users, raw_photos, stage_users, stage_photos], resources=resources).success
    assert store.read_parquet(staging_key("photos")).num_rows == SCALE.photos
    for day, planted in manifest["days"].items():
        assert dg.materialize([stage_events], partition_key=day, resources=resources).success
        assert store.read_parquet(partition_key("staging/events", day)).num_rows == planted["valid_events"]
        assert store.read_parquet(partition_key("staging/events_quarantine", day)).num_rows == planted["quarantined"]


def test_sensor_lists_the_s3_prefix(s3_lake) -> None:
    store, _, resources = s3_lake
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"lake": resources["lake"]})
        result = new_logs_sensor(context)
        assert sorted(r.partition_key for r in result.run_requests) == ["2026-11-01", "2026-11-02"]
        again = new_logs_sensor(
            dg.build_sensor_context(instance=instance, cursor=result.cursor, resources={"lake": resources["lake"]})
        )
        assert not again.run_requests


def test_s3_key_validation_blocks_traversal(s3_lake) -> None:
    store, _, _ = s3_lake
    with pytest.raises(ValueError, match="invalid lake key"):
        store.read_bytes("../other-prefix/secret")


def test_dvc_remote_on_s3_and_pull_into_a_fresh_clone(tmp_path) -> None:
    """Pins pushed to an S3 DVC remote come back byte for byte in a fresh clone of the data
    registry with `dvc pull`: the remote's URL and endpoint are committed, credentials come
    from the environment."""
    import os

    from platform_assets.lib.registry import Registry, dvc_executable, shard_dir
    from platform_assets_tests.support.helpers import run_cli

    with s3_server() as endpoint:
        make_bucket(endpoint, "dvc-store")
        registry = Registry(tmp_path / "registry", "s3://dvc-store/platform", s3_endpoint_url=endpoint)
        shards = registry.root / shard_dir("2026-11-01")
        shards.mkdir(parents=True)
        blobs = {f"shard-{i:05d}.parquet": os.urandom(200_000) for i in range(3)}
        for name, data in blobs.items():
            (shards / name).write_bytes(data)
        pin = registry.pin(shard_dir("2026-11-01"), "pinned shards")
        assert pin.files == 3 and pin.bytes == 600_000 and pin.md5.endswith(".dir")
        assert pin.commit == run_cli(registry.root, "git", "rev-parse", "HEAD").stdout.strip()
        assert run_cli(registry.root, "git", "status", "--porcelain").stdout == ""
        assert registry.missing_on_remote([shard_dir("2026-11-01")]) == []
        clone = tmp_path / "clone"
        run_cli(tmp_path, "git", "clone", "-q", str(registry.root), str(clone))
        assert (clone / f"{shard_dir('2026-11-01')}.dvc").read_text() == (registry.root / pin.dvc_file).read_text()
        assert not (clone / shard_dir("2026-11-01")).exists()
        run_cli(clone, dvc_executable(), "pull")  # no cache shared with the registry: only S3 has the bytes
        for name, data in blobs.items():
            assert (clone / shard_dir("2026-11-01") / name).read_bytes() == data
        assert sorted(p.name for p in (clone / shard_dir("2026-11-01")).iterdir()) == sorted(blobs)


def test_sensor_on_s3_ignores_a_redelivery_of_the_same_bytes(s3_lake) -> None:
    store, _, resources = s3_lake
    with dg.instance_for_test() as instance:
        first = new_logs_sensor(dg.build_sensor_context(instance=instance, resources={"lake": resources["lake"]}))
        key = "logs/dt=2026-11-02/hour=05/part-00.jsonl.gz"
        store.write_bytes(key, store.read_bytes(key))  # same key, same bytes, a new upload
        again = new_logs_sensor(
            dg.build_sensor_context(instance=instance, cursor=first.cursor, resources={"lake": resources["lake"]})
        )
        assert not again.run_requests
        changed_bytes = store.read_bytes(key)[:-8] + b"\0" * 8
        store.write_bytes(key, changed_bytes)
        third = new_logs_sensor(
            dg.build_sensor_context(instance=instance, cursor=first.cursor, resources={"lake": resources["lake"]})
        )
        assert [r.partition_key for r in third.run_requests] == ["2026-11-02"]

"""Against a real PostgreSQL server: the app-database extract and the Dagster instance storage."""

import dagster as dg
import pytest
import sqlalchemy as sa

from platform_assets.defs.lake import raw_db
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.resources import AppDatabaseResource, LakeResource
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.lib.lake_layout import raw_snapshot_key, staging_key
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.simulator import LakeScale, generate_lake
from platform_assets_tests.support.helpers import ROOT
from platform_assets_tests.support.pg_server import postgres_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as url:
        yield url


def test_app_database_extract_reads_postgres_in_batches(tmp_path, pg_url, monkeypatch) -> None:
    store = LakeStore(str(tmp_path / "lake"))
    (tmp_path / "lake").mkdir()
    manifest = generate_lake(store, pg_url, LakeScale(users=80, photos=300, days=1, events_per_day=500, seed=4))
    resources = {"lake": LakeResource(root=store.root), "app_db": AppDatabaseResource(url=pg_url, batch_rows=64)}
    batches: dict[str, list[int]] = {}
    write_snapshot = raw_db.write_snapshot

    def counted(store, key, frames):  # the frames the snapshot writer is handed, as they stream from the server
        def each():
            for frame in frames:
                batches.setdefault(key, []).append(frame.height)
                yield frame

        return write_snapshot(store, key, each())

    monkeypatch.setattr(raw_db, "write_snapshot", counted)
    assert dg.materialize([raw_users, raw_photos, stage_users, stage_photos], resources=resources).success
    assert batches == {
        raw_snapshot_key("users"): [64, 16],  # 80 users
        raw_snapshot_key("photos"): [64] * 4 + [44],  # 300 photos
    }
    assert store.read_parquet(staging_key("users")).num_rows == manifest["scale"]["users"]
    photos = store.read_parquet(staging_key("photos"))
    assert photos.num_rows == manifest["scale"]["photos"]
    assert str(photos.schema.field("posted_at").type) == "timestamp[us, tz=UTC]"


def test_dagster_instance_storage_on_postgres_survives_a_restart(tmp_path, pg_url) -> None:
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE dagster"))
    engine.dispose()
    url = pg_url.rsplit("/", 1)[0].replace("+psycopg2", "") + "/dagster"
    settings = {"storage": {"postgres": {"postgres_url": url}}}

    @dg.asset
    def probe() -> int:
        return 1

    with dg.instance_for_test(overrides=settings, temp_dir=str(tmp_path)) as first:
        result = dg.materialize([probe], instance=first)
        assert result.success
        run_id = result.run_id
    with dg.instance_for_test(overrides=settings, temp_dir=str(tmp_path)) as restarted:
        assert restarted.get_run_by_id(run_id).is_success
        assert restarted.get_latest_materialization_event(dg.AssetKey("probe")).run_id == run_id
        assert "postgres" in type(restarted.run_storage).__module__


def test_the_production_dagster_yaml_runs_on_postgres_and_s3(tmp_path, pg_url, monkeypatch) -> None:
    """deploy/production/dagster.yaml as shipped: storage in PostgreSQL, compute logs in S3."""
    import shutil

    import boto3

    from platform_assets_tests.support.s3_server import make_bucket, s3_server

    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE dagster_prod"))
    engine.dispose()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "production" / "dagster.yaml", home)
    host_port = pg_url.split("@")[1].split("/")[0]
    with s3_server() as endpoint:
        make_bucket(endpoint, "compute-logs")
        for name, value in {
            "DAGSTER_PG_USERNAME": "platform",
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_HOST": host_port.split(":")[0],
            "DAGSTER_PG_PORT": host_port.split(":")[1],
            "DAGSTER_PG_DB": "dagster_prod",
            "DAGSTER_COMPUTE_LOG_BUCKET": "compute-logs",
            "PLATFORM_ASSETS_S3_ENDPOINT_URL": endpoint,
        }.items():
            monkeypatch.setenv(name, value)

        @dg.asset
        def probe(context: dg.AssetExecutionContext) -> int:
            context.log.info("hello from production")
            return 1

        with dg.DagsterInstance.from_config(str(home)) as instance:
            result = dg.materialize([probe], instance=instance)
            assert result.success
            assert instance.get_run_by_id(result.run_id).is_success
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="compute-logs").get("Contents", [])]
        assert any(k.startswith("dagster-compute-logs/") for k in keys)

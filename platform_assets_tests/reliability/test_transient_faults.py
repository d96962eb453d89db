"""Transient and permanent faults against real servers behind a fault-injecting proxy: the S3
API server drops connections and answers 503 SlowDown for a while, PostgreSQL drops and
refuses connections for a while. Runs retry with backoff and succeed with the same data; a
permanent outage ends in one error that names the resource (and never its password)."""

import time
from urllib.parse import urlparse

import dagster as dg
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from platform_assets.defs.lake.raw_db import raw_users
from platform_assets.defs.resources import AppDatabaseResource, AppDatabaseUnavailableError, LakeResource
from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.lake_store import LakeStore, LakeUnavailableError
from platform_assets.lib.simulator import LakeScale, generate_lake
from platform_assets_tests.support.fault_proxy import fault_proxy
from platform_assets_tests.support.pg_server import postgres_server
from platform_assets_tests.support.s3_server import make_bucket, s3_server

pytestmark = pytest.mark.slow

DAY = "2026-11-01"
SCALE = LakeScale(users=50, photos=80, days=1, events_per_day=3000, files_per_hour=2, defect_rate=0.01, seed=3)


def events_of(store: LakeStore) -> bytes:
    return store.read_bytes(f"staging/events/dt={DAY}/part-0.parquet")


def test_s3_faults_for_a_while_are_retried_and_the_partition_is_the_same(tmp_path) -> None:
    with s3_server() as endpoint:
        make_bucket(endpoint, "lake")
        direct = LakeStore("s3://lake/p", s3_endpoint_url=endpoint)
        generate_lake(direct, f"sqlite:///{tmp_path / 'app.db'}", SCALE, images=False)
        assert dg.materialize(
            [stage_events],
            partition_key=DAY,
            resources={"lake": LakeResource(root="s3://lake/p", s3_endpoint_url=endpoint)},
        ).success
        clean = events_of(direct)
        direct.delete(f"staging/events/dt={DAY}/part-0.parquet")

        with fault_proxy(urlparse(endpoint).port, http=True) as proxy:
            via_proxy = f"http://127.0.0.1:{proxy.port}"
            proxy.fail_next(4)  # resets and 503s, within one request's retries
            result = dg.materialize(
                [stage_events],
                partition_key=DAY,
                resources={"lake": LakeResource(root="s3://lake/p", s3_endpoint_url=via_proxy)},
            )
            assert result.success and proxy.injected == 4 and proxy.forwarded > 0
            assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]

            proxy.fail_next(4)  # more than a request's retries: the step fails and Dagster reruns it
            result = dg.materialize(
                [stage_events],
                partition_key=DAY,
                resources={"lake": LakeResource(root="s3://lake/p", s3_endpoint_url=via_proxy, s3_attempts=2)},
            )
            assert result.success and proxy.injected == 8
            assert [e.event_type_value for e in result.all_events].count("STEP_UP_FOR_RETRY") >= 1
        assert events_of(direct) == clean  # byte for byte what the fault-free run wrote


def test_postgres_dropping_connections_for_a_while_is_retried(tmp_path) -> None:
    with postgres_server() as url:
        generate_lake(LakeStore(str(tmp_path)), url, SCALE, images=False)
        port = sa.make_url(url).port
        with fault_proxy(port) as proxy:
            proxied = str(sa.make_url(url).set(port=proxy.port, password="s3cr3t-pw"))
            proxy.fail_next(3)  # within the client's 5 attempts
            started = time.monotonic()
            result = dg.materialize(
                [raw_users],
                resources={
                    "lake": LakeResource(root=str(tmp_path)),
                    "app_db": AppDatabaseResource(url=proxied, max_backoff_s=1),
                },
            )
            assert result.success and proxy.injected == 3
            assert time.monotonic() - started < 30
            proxy.fail_next(3)  # more than the client's 2 attempts: Dagster's retry policy reruns the step
            result = dg.materialize(
                [raw_users],
                resources={
                    "lake": LakeResource(root=str(tmp_path)),
                    "app_db": AppDatabaseResource(url=proxied, attempts=2),
                },
            )
            assert result.success and proxy.injected == 6
            assert [e.event_type_value for e in result.all_events].count("STEP_UP_FOR_RETRY") == 1
        assert pq.read_table(tmp_path / "raw" / "app_db" / "users.parquet").num_rows == SCALE.users


def test_a_permanent_postgres_outage_names_the_database_not_its_password(tmp_path) -> None:
    with postgres_server() as url, fault_proxy(sa.make_url(url).port) as proxy:
        proxy.fail_always()
        db = AppDatabaseResource(
            url=str(sa.make_url(url).set(port=proxy.port, password="s3cr3t-pw")), attempts=3, max_backoff_s=0.2
        )
        with pytest.raises(AppDatabaseUnavailableError) as err:
            db.read_table("users")
        message = str(err.value)
        assert f"127.0.0.1:{proxy.port}/postgres" in message and "failed 3 times" in message and "'users'" in message
        assert "s3cr3t-pw" not in message and "***" in message
        assert proxy.injected == 3


def test_a_permanent_s3_outage_names_the_lake_and_what_failed() -> None:
    with s3_server() as endpoint, fault_proxy(urlparse(endpoint).port, http=True) as proxy:
        make_bucket(endpoint, "lake")
        proxy.fail_always()
        store = LakeStore("s3://lake/p", s3_endpoint_url=f"http://127.0.0.1:{proxy.port}", s3_attempts=3)
        for action in (
            lambda: store.read_bytes("logs/x.jsonl.gz"),
            lambda: store.list_files("logs"),
            lambda: store.write_bytes("staging/x.parquet", b"x"),
        ):
            with pytest.raises(LakeUnavailableError) as err:
                action()
            message = str(err.value)
            assert message.startswith(f"lake s3://lake/p (S3 endpoint http://127.0.0.1:{proxy.port}) unavailable")
            assert "after 3 attempts" in message
        assert proxy.injected >= 9  # every attempt of every request reached the (failing) server


def test_every_io_step_has_the_retry_policy() -> None:
    from platform_assets.definitions import defs
    from platform_assets.defs.retry import IO_RETRY

    for asset in defs().resolve_asset_graph().assets_defs:
        if asset.is_executable:
            assert asset.op.retry_policy == IO_RETRY, asset.key

"""Production end to end with real processes: `dagster-daemon` on a PostgreSQL instance, the
lake on S3. New log files land; the sensors launch the runs; events, features and shards
update within a bounded time; a redelivered file launches nothing."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.simulator import LakeScale, append_hour, generate_lake
from platform_assets_tests.conftest import dvc_repo
from platform_assets_tests.pg_server import postgres_server
from platform_assets_tests.s3_server import make_bucket, s3_server

ROOT = Path(__file__).resolve().parents[1]
SCALE = LakeScale(users=60, photos=200, days=2, events_per_day=3000, defect_rate=0.005, seed=9)
SHARDS = dg.AssetKey(["shards", "training_shards"])
EVENTS = dg.AssetKey(["staging", "events"])


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(2)


def test_daemon_runs_the_graph_from_new_files_on_s3_and_postgres(tmp_path, monkeypatch) -> None:
    with postgres_server() as pg_url, s3_server() as endpoint:
        make_bucket(endpoint, "lake")
        make_bucket(endpoint, "logs-bucket")
        engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE dagster"))
            conn.execute(sa.text("CREATE DATABASE app"))
        engine.dispose()
        host, port = pg_url.split("@")[1].split("/")[0].split(":")
        app_db = pg_url.rsplit("/", 1)[0] + "/app"
        lake = LakeStore("s3://lake/prod", s3_endpoint_url=endpoint)
        generate_lake(lake, app_db, SCALE)
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(ROOT / "deploy" / "production" / "dagster.yaml", home)
        env = {
            "PLATFORM_ASSETS_DEPLOYMENT": "production", "PLATFORM_ASSETS_LAKE": lake.root,
            "PLATFORM_ASSETS_S3_ENDPOINT_URL": endpoint, "PLATFORM_ASSETS_APP_DB_URL": app_db,
            "PLATFORM_ASSETS_WORKSPACE": str(dvc_repo(tmp_path / "repo") / "data"),
            "DAGSTER_HOME": str(home), "DAGSTER_PG_USERNAME": "platform", "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_HOST": host, "DAGSTER_PG_PORT": port, "DAGSTER_PG_DB": "dagster",
            "DAGSTER_COMPUTE_LOG_BUCKET": "logs-bucket",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)

        from platform_assets.definitions import defs

        definitions = defs()
        with dg.DagsterInstance.get() as instance:
            run_config = {"ops": {"embeddings__image_encoder": {"config": {"epochs": 1, "batch_size": 64}},
                                  "embeddings__image_embeddings": {"config": {"workers": 0}}}}
            assert definitions.resolve_job_def("app_db_job").execute_in_process(instance=instance).success
            assert definitions.resolve_job_def("embeddings_job").execute_in_process(instance=instance, run_config=run_config).success
            log = open(tmp_path / "daemon.log", "w")
            daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
                                      cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_for(lambda: len(instance.get_materialized_partitions(EVENTS)) == 2, 240, "events of both days")
                wait_for(lambda: "2026-11-01" in instance.get_materialized_partitions(SHARDS), 300,
                         "shards of the first day (events -> features -> shards, all by sensors)")
                runs_before = len(instance.get_run_records())
                key = "logs/dt=2026-11-02/hour=05/part-00.jsonl.gz"
                lake.write_bytes(key, lake.read_bytes(key))  # the same file delivered twice
                append_hour(lake)  # and a new hour for a new day
                wait_for(lambda: "2026-11-03" in instance.get_materialized_partitions(EVENTS), 180, "the new day's events")
                time.sleep(40)  # more sensor ticks: nothing else may be launched for the redelivered file
                events_runs = [r for r in instance.get_run_records() if r.dagster_run.job_name == "events_job"]
                assert sorted(r.dagster_run.tags.get("dagster/partition") for r in events_runs) == [
                    "2026-11-01", "2026-11-02", "2026-11-03"]
                assert all(r.dagster_run.is_success for r in instance.get_run_records() if r.dagster_run.is_finished)
                assert len(instance.get_run_records()) > runs_before
            finally:
                daemon.terminate()
                daemon.wait(30)
                log.close()

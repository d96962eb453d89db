"""Refused work: a setting or an input that cannot work fails on the first attempt (no retries),
with one message naming the setting and the fix, and writes nothing."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.defs.lake.raw_db import raw_users
from platform_assets.defs.resources import AppDatabaseResource, LakeResource
from platform_assets.defs.staging.events import stage_events
from platform_assets_tests.support.helpers import ROOT, SMALL, files_under, make_lake

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def failed_at_once(result: dg.ExecuteInProcessResult, seconds: float) -> str:
    """The one step failure's message, after checking it was not retried and came fast."""
    assert not result.success
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
    assert seconds < 20, f"{seconds:.0f}s: retried or backed off"
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return failure.step_failure_data.error.message


def timed_materialize(assets, **kwargs) -> tuple[dg.ExecuteInProcessResult, float]:
    started = time.monotonic()
    result = dg.materialize(assets, raise_on_error=False, **kwargs)
    return result, time.monotonic() - started


def test_a_missing_sqlite_app_database_is_named_and_never_created(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    missing = tmp_path / "nope" / "app.db"
    result, seconds = timed_materialize(
        [raw_users],
        resources={
            "lake": LakeResource(root=str(tmp_path / "lake")),
            "app_db": AppDatabaseResource(url=f"sqlite:///{missing}"),
        },
    )
    message = failed_at_once(result, seconds)
    assert str(missing) in message and "PLATFORM_ASSETS_APP_DB_URL" in message
    assert not missing.exists() and not missing.parent.exists()
    assert files_under(tmp_path / "lake") == {}


def test_a_missing_table_fails_at_once(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    db = tmp_path / "app.db"
    sqlite3.connect(db).execute("CREATE TABLE photos (photo_id INTEGER)").connection.commit()
    result, seconds = timed_materialize(
        [raw_users],
        resources={
            "lake": LakeResource(root=str(tmp_path / "lake")),
            "app_db": AppDatabaseResource(url=f"sqlite:///{db}"),
        },
    )
    assert "no such table: users" in failed_at_once(result, seconds)
    assert files_under(tmp_path / "lake") == {}


def test_a_missing_lake_directory_fails_at_once_naming_the_setting(tmp_path: Path) -> None:
    result, seconds = timed_materialize(
        [stage_events],
        partition_key="2026-11-01",
        resources={
            "lake": LakeResource(root=str(tmp_path / "no-lake")),
            "app_db": AppDatabaseResource(url="sqlite:///x.db"),
        },
    )
    message = failed_at_once(result, seconds)
    assert "PLATFORM_ASSETS_LAKE" in message and str(tmp_path / "no-lake") in message
    assert not (tmp_path / "no-lake").exists()


def dagster_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [DAGSTER, *args, "-m", "platform_assets.definitions"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(home), **env},
    )


@pytest.mark.e2e
@pytest.mark.slow
def test_a_malformed_start_date_is_named_with_the_expected_form(tmp_path: Path) -> None:
    done = dagster_cli(tmp_path, "asset", "list", PLATFORM_ASSETS_START_DATE="2026-13-45")
    assert done.returncode != 0
    assert "PLATFORM_ASSETS_START_DATE='2026-13-45' is not a date: use YYYY-MM-DD" in done.stderr


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("key", ["2026-3-1", "2025-12-31"], ids=["malformed", "before-the-start-date"])
def test_a_partition_outside_the_range_or_malformed_is_refused_and_writes_nothing(tmp_path: Path, key: str) -> None:
    lake = make_lake(tmp_path, SMALL)
    before = files_under(Path(lake.store.root))
    started = time.monotonic()
    done = dagster_cli(
        tmp_path,
        "asset",
        "materialize",
        "--select",
        "staging/events,staging/events_quarantine",
        "--partition",
        key,
        PLATFORM_ASSETS_LAKE=lake.store.root,
        PLATFORM_ASSETS_APP_DB_URL=lake.app_db_url,
        PLATFORM_ASSETS_START_DATE="2026-01-01",
    )
    assert done.returncode != 0 and time.monotonic() - started < 60
    assert key in done.stdout + done.stderr
    assert files_under(Path(lake.store.root)) == before


def cluster_env(tmp_path: Path, broker: str) -> dict[str, str]:
    """The cluster deployment's settings with `broker`, every location a directory of `tmp_path`."""
    (tmp_path / "lake").mkdir(exist_ok=True)
    return {
        **os.environ,
        "PLATFORM_ASSETS_DEPLOYMENT": "cluster",
        "PLATFORM_ASSETS_BROKER_URL": broker,
        "PLATFORM_ASSETS_LAKE": str(tmp_path / "lake"),
        "PLATFORM_ASSETS_APP_DB_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "PLATFORM_ASSETS_WORKSPACE": str(tmp_path / "registry"),
        "PLATFORM_ASSETS_DVC_REMOTE": str(tmp_path / "dvc-remote"),
        "PLATFORM_ASSETS_REGISTRY_GIT_REMOTE": str(tmp_path / "registry.git"),
        "DAGSTER_HOME": str(tmp_path),
    }


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(
    ("broker", "message"),
    [
        ("", "PLATFORM_ASSETS_BROKER_URL='': PLATFORM_ASSETS_DEPLOYMENT=cluster needs the broker's address"),
        ("amqp://guest@broker//", "PLATFORM_ASSETS_BROKER_URL='amqp://guest@broker//': PLATFORM_ASSETS_DEPLOYMENT"),
        ("redis://127.0.0.1:9/0", "PLATFORM_ASSETS_BROKER_URL='redis://127.0.0.1:9/0': no broker answers there"),
    ],
)
def test_a_broker_that_is_not_there_stops_the_worker_and_the_run_at_once_naming_the_setting(
    tmp_path: Path, broker: str, message: str
) -> None:
    """A malformed broker URL stops the code location from loading; one where nothing answers
    (port 9, discard) fails a worker's start and a run's first step at once, no step sent."""
    env = cluster_env(tmp_path, broker)
    started = time.monotonic()
    worker = subprocess.run(
        [str(Path(sys.executable).with_name("platform-assets")), "worker"], env=env, capture_output=True, text=True
    )
    assert worker.returncode == 2 and message in worker.stderr, worker.stderr
    run = subprocess.run([DAGSTER, "job", "execute", "-m", "platform_assets.definitions", "-j", "app_db_job"],
                         cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    assert run.returncode != 0 and message in run.stdout + run.stderr, (run.stdout + run.stderr)[-3000:]
    assert time.monotonic() - started < 60, "retried or backed off"
    assert not list((tmp_path / "lake").iterdir())  # nothing written


def test_a_worker_outside_the_cluster_deployment_or_for_an_unknown_queue_is_refused(tmp_path: Path) -> None:
    command = [str(Path(sys.executable).with_name("platform-assets")), "worker"]
    local = subprocess.run(
        command, env={**os.environ, "PLATFORM_ASSETS_DEPLOYMENT": "local"}, capture_output=True, text=True
    )
    assert local.returncode == 2 and "set PLATFORM_ASSETS_DEPLOYMENT=cluster" in local.stderr, local.stderr
    queue = subprocess.run([*command, "--queues", "cpu,tpu"], env=cluster_env(tmp_path, "redis://127.0.0.1:9/0"),
                           capture_output=True, text=True)  # fmt: skip
    assert queue.returncode == 2 and "--queues cpu,tpu: no queue ['tpu']; the queues are cpu, gpu" in queue.stderr

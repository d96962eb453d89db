"""Production end to end with real processes: `dagster-daemon` on a PostgreSQL instance, the
lake on S3, the webserver beside it. New log files land; the sensors launch the runs; events,
features and shards update within a bounded time; the daemon restarts with its cursors kept
in PostgreSQL; a redelivered file launches nothing; each shard pin is a commit on the data
registry's git remote, its objects on the S3 DVC remote."""

import json
import time

import dagster as dg
import pytest
import requests
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from platform_assets.defs.keys import EVENTS, TRAINING_SHARDS
from platform_assets.lib.registry import dvc_executable, shard_dir
from platform_assets.lib.simulator import LakeScale, append_hour
from platform_assets_tests.support.helpers import run_cli
from platform_assets_tests.support.production_stack import production_stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCALE = LakeScale(users=60, photos=200, days=2, events_per_day=3000, defect_rate=0.005, seed=9)
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def failure_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """What a failed run's steps said: the test names the error, not only that a run failed."""
    return [
        str(e.dagster_event.event_specific_data.error.message)
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    ]


def finished_ticks(instance: dg.DagsterInstance, sensor: str, after: float) -> int:
    """How many ticks of `sensor` started after `after` (epoch seconds) and have finished."""
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    state = next(s for s in states if s.name == sensor)
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10)  # newest first
    return sum(t.timestamp > after and t.status != TickStatus.STARTED for t in ticks)


def test_daemon_runs_the_graph_from_new_files_on_s3_and_postgres(tmp_path) -> None:
    with production_stack(tmp_path, SCALE) as stack:
        instance, lake = stack.instance, stack.lake
        wait_for(lambda: len(instance.get_materialized_partitions(EVENTS)) == 2, 240, "events of both days")
        wait_for(
            lambda: (
                {"2026-11-01", "2026-11-02"} <= instance.get_materialized_partitions(TRAINING_SHARDS)
                and not instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT))
            ),
            420,
            "shards of both days (events -> features -> shards, all by sensors), no run in flight",
        )
        runs_before = len(instance.get_run_records())
        # Restarted between runs: the default run launcher's runs are the daemon's children (in
        # production the ECS or Kubernetes launcher runs them apart, and a restart leaves them be).
        stack.restart_daemon()  # the sensors' cursors live in PostgreSQL: nothing seen is requested again
        key = "logs/dt=2026-11-02/hour=05/part-00.jsonl.gz"
        lake.write_bytes(key, lake.read_bytes(key))  # the same file delivered twice
        append_hour(lake)  # and a new hour for a new day
        wait_for(lambda: "2026-11-03" in instance.get_materialized_partitions(EVENTS), 180, "the new day's events")
        staged = time.time()  # two more whole ticks of the sensor: none may launch a run for the redelivered file
        wait_for(lambda: finished_ticks(instance, "new_logs_sensor", staged) >= 2, 60, "two more sensor ticks")
        events_runs = [r for r in instance.get_run_records() if r.dagster_run.job_name == "events_job"]
        assert sorted(r.dagster_run.tags.get("dagster/partition") for r in events_runs) == [
            "2026-11-01",
            "2026-11-02",
            "2026-11-03",
        ]
        failed = [
            r.dagster_run
            for r in instance.get_run_records()
            if r.dagster_run.is_finished and not r.dagster_run.is_success
        ]
        assert not failed, [
            (run.job_name, run.tags.get("dagster/partition"), failure_messages(instance, run.run_id)) for run in failed
        ]
        assert len(instance.get_run_records()) > runs_before
        query = {"query": "{ runsOrError { ... on Runs { results { runId status } } } }"}
        response = requests.post(f"{stack.webserver_url}/graphql", json=query, timeout=30).json()
        served = {r["runId"] for r in response["data"]["runsOrError"]["results"]}
        assert served == {
            r.dagster_run.run_id for r in instance.get_run_records()
        }  # the webserver reads the same instance
        dvc_file = f"{shard_dir('2026-11-01')}.dvc"
        assert run_cli(stack.registry_git_remote, "git", "log", "--oneline", "main", "--", dvc_file).stdout.strip()
        cloud = run_cli(stack.registry, dvc_executable(), "status", "--cloud", "--json", dvc_file).stdout
        assert json.loads(cloud or "{}") == {}  # every object of the pin is on the S3 remote

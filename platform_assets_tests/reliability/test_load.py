"""Concurrency and load: many partitions materialized in parallel processes, two backfills
over the same days at once, and sensor ticks (with their runs) while log files keep landing.
No duplicate rows, no lost partition, no lost file, and outputs equal to a calm sequential run."""

import json
import subprocess
import threading
import time
from datetime import date

import dagster as dg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from platform_assets.defs.lake.sensors import new_logs_sensor
from platform_assets.defs.resources import LakeResource
from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.lake_layout import list_log_days, read_days
from platform_assets.lib.simulator import LakeScale, append_hour
from platform_assets.lib.staging.events import EVENTS_SCHEMA
from platform_assets_tests.reliability.materialize_child import command
from platform_assets_tests.support.helpers import files_under, make_lake, transform_day

pytestmark = pytest.mark.slow

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
SCALE = LakeScale(users=200, photos=150, days=4, events_per_day=40_000, files_per_hour=2, defect_rate=0.01, seed=9)


def child(day: str, lake, workspace) -> subprocess.Popen:
    return subprocess.Popen(
        command("events", day, lake.store.root, lake.app_db_url, str(workspace)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_overlapping_backfills_of_every_day_in_parallel_equal_a_sequential_run(tmp_path) -> None:
    lake = make_lake(tmp_path, SCALE)
    staging = tmp_path / "lake" / "staging"
    for day in DAYS:  # the calm reference: one partition after another, in this process
        assert dg.materialize([stage_events], partition_key=day, resources=lake.resources()).success
    reference = files_under(staging)
    assert len(reference) == 4 * len(DAYS)  # events and quarantine: a part and its manifest each

    started = time.monotonic()
    runs = [child(day, lake, tmp_path / "ws") for _backfill in range(2) for day in DAYS]  # 8 processes at once
    for proc in runs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()[-2000:]
    assert files_under(staging) == reference  # no partition lost, none half-written, bytes as the calm run
    ids = pq.read_table(staging / "events", columns=["event_id"])["event_id"]
    assert pc.count_distinct(ids).as_py() == len(ids)  # no duplicate rows, within or across days
    assert time.monotonic() - started < 300


def test_sensor_ticks_and_runs_while_files_keep_landing_lose_nothing(tmp_path) -> None:
    lake = make_lake(tmp_path, LakeScale(users=60, photos=80, days=2, events_per_day=3000, seed=4))
    resources = lake.resources()
    landed: list[str] = []
    done = threading.Event()
    ticked = threading.Condition()
    ticks = 0

    def deliver() -> None:  # twelve hours of logs and two late files, one hour every 0.3 s
        for i in range(12):
            landed.extend(append_hour(lake.store, late_day="2026-11-01" if i in (3, 9) else None))
            time.sleep(0.3)
            if i % 3 == 2:  # however slow the runs, the sensor ticks between every three files
                with ticked:
                    seen = ticks
                    ticked.wait_for(lambda seen=seen: ticks > seen, timeout=120)
        done.set()

    writer = threading.Thread(target=deliver)
    writer.start()
    cursor, requested = None, []
    with dg.instance_for_test() as instance:
        while True:
            finished = done.is_set()  # read before the tick: the tick after the last file is the final one
            if finished and cursor:  # and it comes after the next full sweep, which finds the late files
                cursor = json.dumps({**json.loads(cursor), "swept_at": 0})
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"lake": LakeResource(root=lake.store.root)}
            )
            result = new_logs_sensor(context)
            with ticked:
                cursor, ticks = result.cursor, ticks + 1
                ticked.notify_all()
            for request in result.run_requests or []:  # run what the tick asked for, as the daemon would
                requested.append(request.run_key)
                assert dg.materialize([stage_events], partition_key=request.partition_key, resources=resources).success
            if finished:
                break
    writer.join()

    assert len(requested) == len(set(requested))  # no run key requested twice
    days, _ = list_log_days(lake.store)
    assert {f"{day}:{listing.digest}" for day, listing in days.items()} <= set(
        requested
    )  # the final state of every day
    assert ticks >= 5 and len(landed) == 14  # twelve hourly files and two late ones
    for day, listing in days.items():  # every valid event of every landed file is in its day's partition, once
        expected = transform_day(lake.store, [f.key for f in listing.files], date.fromisoformat(day)).events
        got = read_days(lake.store, "staging/events", [day], EVENTS_SCHEMA)  # every part of the day
        assert sorted(got["event_id"].to_pylist()) == sorted(expected["event_id"].to_pylist())

"""`new_logs_sensor` against a real lake directory, with the cursor carried across ticks."""

import gzip
import json
import logging
import os
import re
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from platform_assets.defs.keys import EVENTS, USER_ACTIVITY
from platform_assets.defs.lake.jobs import STAGE_EVENTS
from platform_assets.defs.lake.sensors import EVENTS_DAY_TAG, FULL_SWEEP_SECONDS, new_logs_sensor
from platform_assets.defs.resources import LakeResource
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.simulator import append_hour
from platform_assets_tests.support.helpers import ROOT


def tick(lake, instance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"lake": LakeResource(root=lake.store.root)}
    )
    return new_logs_sensor(context)


def requested(result: dg.SensorResult) -> list[str]:
    return sorted(r.partition_key for r in result.run_requests or [])


def test_first_tick_requests_every_day_once_then_nothing(fresh_lake, instance) -> None:
    first = tick(fresh_lake, instance, None)
    assert requested(first) == ["2026-11-01", "2026-11-02"]  # a burst of many files per day: one run per day
    assert len({r.run_key for r in first.run_requests}) == 2
    obs = {o.partition: o for o in first.asset_events}
    assert obs["2026-11-01"].tags["dagster/data_version"] == first.run_requests[0].run_key.split(":")[1]
    again = tick(fresh_lake, instance, first.cursor)
    assert requested(again) == [] and again.skip_reason is not None


def swept_ago(cursor: str, seconds: float) -> str:
    """The same cursor as if its last full sweep was `seconds` ago."""
    return json.dumps({**json.loads(cursor), "swept_at": time.time() - seconds})


def sweep_due(cursor: str) -> str:
    """The same cursor, FULL_SWEEP_SECONDS later: the next tick lists the whole logs prefix."""
    return swept_ago(cursor, FULL_SWEEP_SECONDS)


def test_new_hour_requests_only_its_day_and_late_file_reopens_old_day_at_the_next_sweep(fresh_lake, instance) -> None:
    cursor = tick(fresh_lake, instance, None).cursor
    append_hour(fresh_lake.store)
    result = tick(fresh_lake, instance, cursor)
    assert requested(result) == ["2026-11-03"]
    append_hour(fresh_lake.store, late_day="2026-11-01")
    result = tick(fresh_lake, instance, result.cursor)
    assert requested(result) == ["2026-11-03"]  # the newest day's folder is listed every tick
    almost = tick(fresh_lake, instance, swept_ago(result.cursor, FULL_SWEEP_SECONDS - 5))
    assert requested(almost) == []  # the late file waits for the sweep: a tick (5 s) before it, nothing
    result = tick(fresh_lake, instance, sweep_due(almost.cursor))
    assert requested(result) == ["2026-11-01"]  # the late file, found by the full sweep
    assert requested(tick(fresh_lake, instance, sweep_due(result.cursor))) == []


def test_the_docs_state_the_sensors_intervals_and_the_late_file_bound_the_code_has() -> None:
    """What README.md and docs/SENSORS.md promise a user: each sensor's tick (the daemon's 5 s loop
    or the sensor's longer minimum interval) and the longest a late file waits (the full sweep)."""
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

    from platform_assets.definitions import defs

    sensors = {s.name: s for s in defs().sensors}
    readme = (ROOT / "README.md").read_text()
    stated = dict(re.findall(r"^- `(\w+)` \((\d+) s\)", readme, re.MULTILINE))
    assert set(stated) == {"new_logs_sensor", "features_sensor", "shards_automation"}, stated
    for name, seconds in stated.items():
        assert int(seconds) == max(MIN_INTERVAL_LOOP_TIME, sensors[name].minimum_interval_seconds), name
    guide = " ".join((ROOT / "docs" / "SENSORS.md").read_text().split())
    minutes = FULL_SWEEP_SECONDS // 60
    assert f"ticks every {MIN_INTERVAL_LOOP_TIME} s" in guide
    assert f"Every {minutes} minutes (`FULL_SWEEP_SECONDS`)" in guide
    assert f"is picked up within {minutes} minutes" in guide


def test_a_tick_between_sweeps_lists_the_newest_days_only(fresh_lake, instance, monkeypatch) -> None:
    """Listing cost must not grow with history: between sweeps a tick lists four day folders."""
    listed: list[str] = []
    original = LakeStore.list_files

    def spy(store: LakeStore, prefix: str):
        listed.append(prefix)
        return original(store, prefix)

    monkeypatch.setattr(LakeStore, "list_files", spy)
    cursor = tick(fresh_lake, instance, None).cursor
    assert listed == ["logs"]  # the first tick sweeps
    listed.clear()
    append_hour(fresh_lake.store)
    assert requested(tick(fresh_lake, instance, cursor)) == ["2026-11-03"]
    today = datetime.now(UTC).date()
    days = {"2026-11-02", "2026-11-03", today.isoformat(), (today - timedelta(days=1)).isoformat()}
    assert sorted(listed) == sorted(f"logs/dt={d}" for d in days)
    old = json.loads(cursor)
    assert set(old) == {"days", "swept_at"} and sorted(old["days"]) == ["2026-11-01", "2026-11-02"]


def test_restart_with_stored_cursor_requests_nothing_already_seen(fresh_lake) -> None:
    with dg.instance_for_test() as first_instance:
        cursor = tick(fresh_lake, first_instance, None).cursor
    with dg.instance_for_test() as restarted:  # a new daemon process: only the stored cursor survives
        assert requested(tick(fresh_lake, restarted, cursor)) == []
        append_hour(fresh_lake.store)
        assert requested(tick(fresh_lake, restarted, cursor)) == ["2026-11-03"]


def test_same_file_delivered_again_requests_nothing_but_a_changed_file_does(fresh_lake, instance) -> None:
    cursor = tick(fresh_lake, instance, None).cursor
    key = "logs/dt=2026-11-02/hour=04/part-00.jsonl.gz"
    path = os.path.join(fresh_lake.store.root, key)
    stat = os.stat(path)
    fresh_lake.store.write_bytes(key, fresh_lake.store.read_bytes(key))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same key, size and time: the same delivery
    assert requested(tick(fresh_lake, instance, cursor)) == []
    fresh_lake.store.write_bytes(key, gzip.compress(b'{"event_id": "x"}\n'))
    assert requested(tick(fresh_lake, instance, cursor)) == ["2026-11-02"]


def test_files_outside_the_layout_are_ignored_with_a_warning(fresh_lake, instance) -> None:
    cursor = tick(fresh_lake, instance, None).cursor
    strays = ["logs/README.txt", "logs/dt=2026-11-01/hour=99x/part.jsonl.gz"]
    fresh_lake.store.write_bytes(strays[0], b"hello")
    fresh_lake.store.write_bytes(strays[1], b"")
    context = dg.build_sensor_context(
        instance=instance, cursor=sweep_due(cursor), resources={"lake": LakeResource(root=fresh_lake.store.root)}
    )
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # the sensor's log is the context's own logger, outside caplog's tree
    context.log.addHandler(handler)
    result = new_logs_sensor(context)  # a full sweep: the whole logs prefix, both strays included
    assert requested(result) == []
    warnings = [r.getMessage() for r in records if "outside logs/dt=" in r.getMessage()]
    assert len(warnings) == 1 and all(stray in warnings[0] for stray in strays), warnings
    assert json.loads(result.cursor)["days"] == json.loads(cursor)["days"]  # no day's digest moved
    assert not any(stray in result.cursor for stray in strays)


def test_sensor_runs_materialize_the_requested_partition(fresh_lake, instance, monkeypatch) -> None:
    from platform_assets.definitions import defs

    monkeypatch.setenv("PLATFORM_ASSETS_LAKE", fresh_lake.store.root)
    definitions = defs()
    result = tick(fresh_lake, instance, None)
    job = definitions.resolve_job_def("events_job")
    request = result.run_requests[0]
    assert request.asset_selection == STAGE_EVENTS  # two days at once: the ranged features run follows
    assert request.tags[EVENTS_DAY_TAG] == request.partition_key  # the queue runs one per day at a time
    run = job.execute_in_process(
        instance=instance, partition_key=request.partition_key, asset_selection=request.asset_selection
    )
    assert run.success
    assert fresh_lake.store.exists(f"staging/events/dt={request.partition_key}/part-0.parquet")
    mats = instance.get_latest_materialization_event(EVENTS)
    assert mats.asset_materialization.partition == request.partition_key


def test_features_sensor_requests_one_ranged_run_after_events_land(fresh_lake, instance, monkeypatch) -> None:
    from platform_assets.definitions import defs
    from platform_assets.defs.features.sensors import features_sensor
    from platform_assets.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
    from platform_assets.defs.run_lanes import LANE_TAG

    monkeypatch.setenv("PLATFORM_ASSETS_LAKE", fresh_lake.store.root)
    job = defs().resolve_job_def("events_job")
    for day in ("2026-11-01", "2026-11-02"):
        assert job.execute_in_process(instance=instance, partition_key=day, asset_selection=STAGE_EVENTS).success
    first = features_sensor(dg.build_sensor_context(instance=instance))
    (request,) = first.run_requests
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == ("2026-11-01", "2026-11-02")
    assert request.tags[LANE_TAG] == "background"  # follow-on work: one slot at a time in the run queue
    again = features_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert not again.run_requests
    late = job.execute_in_process(instance=instance, partition_key="2026-11-02", asset_selection=STAGE_EVENTS)
    assert late.success  # a late file re-opened a day
    late = features_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in late.run_requests] == [
        ("2026-11-01", "2026-11-02")
    ]


def test_shards_automation_requests_each_rewritten_training_day_once(instance) -> None:
    """Declarative automation of the shards: any rewritten day of the training set or of the
    embeddings (not only the latest), each once, and only that day."""
    from platform_assets.definitions import defs
    from platform_assets.defs.keys import IMAGE_EMBEDDINGS, TITLE_EMBEDDINGS, TRAINING_SET, TRAINING_SHARDS

    def evaluate(cursor=None):
        return dg.evaluate_automation_conditions(
            defs=defs(), instance=instance, asset_selection=dg.AssetSelection.assets(TRAINING_SHARDS), cursor=cursor
        )

    def requested(result) -> set[str]:
        return {k for r in result.results for k in r.true_subset.expensively_compute_partition_keys()}

    def report(key: dg.AssetKey, partition: str | None = None) -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))

    for day in ("2026-11-01", "2026-11-02"):
        report(IMAGE_EMBEDDINGS, day), report(TITLE_EMBEDDINGS, day)
    start = evaluate()
    assert start.total_requested == 0  # what exists when automation is switched on is not redone
    for day in ("2026-11-01", "2026-11-02", "2026-11-01"):
        report(TRAINING_SET, day)
    first = evaluate(start.cursor)
    assert requested(first) == {"2026-11-01", "2026-11-02"}
    second = evaluate(first.cursor)
    assert second.total_requested == 0
    report(IMAGE_EMBEDDINGS, "2026-11-02")  # a refresh of one day's vectors re-shards that day
    assert requested(evaluate(second.cursor)) == {"2026-11-02"}


def test_a_photos_extract_refreshes_the_embeddings_of_the_last_days_only(instance) -> None:
    """New photos land in the latest days: an extract refreshes their embeddings by itself (in
    the run of their shards when those are due too); older days are a backfill to choose."""
    from platform_assets.definitions import defs
    from platform_assets.defs.embeddings.assets import REFRESH_DAYS
    from platform_assets.defs.keys import IMAGE_EMBEDDINGS, IMAGE_ENCODER, PHOTOS, TITLE_EMBEDDINGS

    now = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)  # the nightly extract, early on the 20th

    def evaluate(cursor=None):
        return dg.evaluate_automation_conditions(
            defs=defs(),
            instance=instance,
            asset_selection=dg.AssetSelection.assets(IMAGE_EMBEDDINGS, TITLE_EMBEDDINGS),
            cursor=cursor,
            evaluation_time=now,
        )

    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=IMAGE_ENCODER))
    for day in (f"2026-11-{d:02}" for d in range(1, 21)):
        for key in (IMAGE_EMBEDDINGS, TITLE_EMBEDDINGS):
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=day))
    start = evaluate()
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=PHOTOS))
    after = evaluate(start.cursor)
    by_asset = {r.key: set(r.true_subset.expensively_compute_partition_keys()) for r in after.results}
    last_days = {f"2026-11-{d:02}" for d in range(21 - REFRESH_DAYS, 21)}
    assert by_asset[IMAGE_EMBEDDINGS] == by_asset[TITLE_EMBEDDINGS] == last_days
    assert evaluate(after.cursor).total_requested == 0


def test_one_new_file_refreshes_its_days_events_and_user_activity_in_one_run(fresh_lake, instance, monkeypatch) -> None:
    """The one-hop path: a single changed day, users and photos staged → one run builds both."""
    from platform_assets.definitions import defs
    from platform_assets.defs.lake.raw_db import raw_photos, raw_users
    from platform_assets.defs.staging.app_tables import stage_photos, stage_users

    monkeypatch.setenv("PLATFORM_ASSETS_LAKE", fresh_lake.store.root)
    definitions = defs()
    job = definitions.resolve_job_def("events_job")
    cursor = tick(fresh_lake, instance, None).cursor
    append_hour(fresh_lake.store)
    (request,) = tick(fresh_lake, instance, cursor).run_requests
    assert request.asset_selection == STAGE_EVENTS  # users and photos not staged yet: activity cannot be built
    assert dg.materialize(
        [raw_users, raw_photos, stage_users, stage_photos], resources=fresh_lake.resources(), instance=instance
    ).success
    for day in ("2026-11-01", "2026-11-02"):
        assert job.execute_in_process(instance=instance, partition_key=day, asset_selection=STAGE_EVENTS).success
    (request,) = tick(fresh_lake, instance, cursor).run_requests
    assert request.partition_key == "2026-11-03" and USER_ACTIVITY in request.asset_selection
    run = job.execute_in_process(instance=instance, partition_key="2026-11-03", asset_selection=request.asset_selection)
    assert run.success
    materialized = {(e.asset_key, e.partition) for e in run.get_asset_materialization_events()}
    assert {(EVENTS, "2026-11-03"), (USER_ACTIVITY, "2026-11-03")} <= materialized
    assert fresh_lake.store.exists("features/user_activity/dt=2026-11-03/part-0.parquet")


def test_days_already_staged_from_the_same_files_are_not_requested_again(fresh_lake, instance) -> None:
    """Whoever staged a day (here `materialize`, as the demo and backfills do), a sensor with no
    cursor yet, as on the first start after `make demo`, requests nothing for it; a file that
    lands later still re-opens the day."""
    from platform_assets.defs.staging.events import stage_events

    for day in ("2026-11-01", "2026-11-02"):
        assert dg.materialize(
            [stage_events],
            partition_key=day,
            resources={"lake": LakeResource(root=fresh_lake.store.root)},
            instance=instance,
        ).success
    first = tick(fresh_lake, instance, None)
    assert requested(first) == [] and first.skip_reason is not None
    append_hour(fresh_lake.store, late_day="2026-11-01")
    assert requested(tick(fresh_lake, instance, sweep_due(first.cursor))) == ["2026-11-01", "2026-11-03"]


def test_features_sensor_on_a_first_start_rebuilds_nothing_the_demo_built(fresh_lake, instance) -> None:
    """Events then features materialized outside the sensor (as `make demo` does): its first tick
    requests nothing; events staged after that still start a features run."""
    from platform_assets.defs.features.sensors import features_sensor
    from platform_assets.defs.keys import TRAINING_SET
    from platform_assets.defs.staging.events import stage_events

    def stage(day: str) -> None:
        resources = {"lake": LakeResource(root=fresh_lake.store.root)}
        assert dg.materialize([stage_events], partition_key=day, resources=resources, instance=instance).success

    for day in ("2026-11-01", "2026-11-02"):
        stage(day)
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=TRAINING_SET, partition=day))
    first = features_sensor(dg.build_sensor_context(instance=instance))
    assert not first.run_requests
    stage("2026-11-02")  # a late file re-opened a day
    (request,) = features_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor)).run_requests
    assert request.run_key.startswith("features:")

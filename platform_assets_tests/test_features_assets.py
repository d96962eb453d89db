"""Materialize the features layer on a generated lake; prove the shipped join does not leak."""

from datetime import date, datetime

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from platform_assets.defs.features.assets import (
    latest_activity,
    photo_features,
    popularity_labels,
    training_set,
    user_activity,
)
from platform_assets.defs.features.sensors import affected_range
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.partitions import range_tags
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.features import training_set as ts_lib
from platform_assets.lib.features.point_in_time_reference import (
    SAMPLE_DAYS,
    SAMPLE_PHOTOS,
    sample_rows,
    verify_point_in_time,
)
from platform_assets.lib.lake_layout import (
    EVENTS_PATH,
    LATEST_ACTIVITY_PATH,
    USER_ACTIVITY_PATH,
    day_parts,
    partition_key,
)
from platform_assets.lib.simulator import LakeScale
from platform_assets_tests.support.helpers import make_lake

SCALE = LakeScale(users=1500, photos=2500, days=5, events_per_day=30_000, defect_rate=0.002, seed=3)


def build_features(lake) -> dg.ExecuteInProcessResult:
    resources = lake.resources()
    assert dg.materialize(
        [raw_users, raw_photos, stage_users, stage_photos, photo_features], resources=resources
    ).success
    days = sorted(lake.manifest["days"])
    for day in days:
        assert dg.materialize([stage_events], partition_key=day, resources=resources).success
    result = dg.materialize(
        [user_activity, latest_activity, popularity_labels, training_set],
        resources=resources,
        tags=range_tags(days[0], days[-1]),
    )
    assert result.success
    return result


@pytest.fixture(scope="module")
def feature_lake(tmp_path_factory):
    lake = make_lake(tmp_path_factory.mktemp("features"), SCALE)
    return lake, build_features(lake)


def test_one_run_builds_every_day_and_the_point_in_time_check_passes(feature_lake) -> None:
    lake, result = feature_lake
    days = sorted(lake.manifest["days"])
    (check,) = result.get_asset_check_evaluations()
    meta = {k: v.value for k, v in check.metadata.items()}
    print(f"point_in_time_correct: {meta}")
    assert check.passed and meta["mismatches"] == 0 and meta["features_as_of_after_posted_at"] == 0
    assert meta["sampled_rows"] == SAMPLE_PHOTOS and meta["sample_days"].count(",") == SAMPLE_DAYS - 1
    assert meta["events_read"] > 1000  # the sampled authors' events and the likes on their photos
    for day in days:
        assert lake.store.exists(partition_key("features/user_activity", day))
    rows = sum(lake.store.read_parquet(partition_key("features/training_set", d)).num_rows for d in days)
    labels = sum(lake.store.read_parquet(partition_key("features/popularity_labels", d)).num_rows for d in days)
    assert labels == SCALE.photos  # every photo has a label row; only closed windows are training rows
    last = lake.store.read_parquet(partition_key("features/popularity_labels", days[-1]))
    assert not any(last["label_ready"].to_pylist())  # the last day's 24 h windows have not closed
    assert 0.5 * SCALE.photos < rows < SCALE.photos


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _validation_score(table: pa.Table) -> float:
    """Ridge regression on the earlier days, rank correlation on the last labelled day."""
    features = [
        c
        for c in table.column_names
        if c.startswith("author_") or c in ("posted_hour_local", "title_length", "title_words", "author_tenure_days")
    ]
    x = np.column_stack([table[c].to_numpy(zero_copy_only=False).astype(float) for c in features])
    x = np.column_stack([np.log1p(np.abs(x)), np.ones(len(x))])
    hour = table["posted_hour_local"].to_numpy()
    x = np.column_stack([x, (hour >= 18) & (hour <= 21)])
    y = table["popularity_score"].to_numpy()
    day = np.array([t.date() for t in table["posted_at"].to_pylist()])
    train, valid = day < day.max(), day == day.max()
    w = np.linalg.solve(x[train].T @ x[train] + 1e-3 * np.eye(x.shape[1]), x[train].T @ y[train])
    return _spearman(x[valid] @ w, y[valid])


def test_a_leaking_join_scores_clearly_better_and_the_correct_one_ships(feature_lake, monkeypatch) -> None:
    lake, _ = feature_lake
    days = sorted(lake.manifest["days"])
    shipped = pa.concat_tables(lake.store.read_parquet(partition_key("features/training_set", d)) for d in days)
    leaking_sql = ts_lib.CHUNK_SQL.replace(
        "e.posted_at >= ua.ts", "date_trunc('day', e.posted_at::TIMESTAMP) + INTERVAL 1 DAY > ua.ts::TIMESTAMP"
    )
    assert leaking_sql != ts_lib.CHUNK_SQL
    monkeypatch.setattr(ts_lib, "CHUNK_SQL", leaking_sql)
    start = shipped["posted_at"][0].as_py().replace(hour=0, minute=0, second=0, microsecond=0)
    leaking = ts_lib.compute_training_set(
        lake.store.read_parquet("features/photo_features.parquet"),
        pa.concat_tables(lake.store.read_parquet(partition_key("features/popularity_labels", d)) for d in days),
        pa.concat_tables(lake.store.read_parquet(partition_key("features/user_activity", d)) for d in days),
        start,
        datetime.fromisoformat(days[-1]).replace(tzinfo=start.tzinfo),
    )
    assert ts_lib.point_in_time_violations(leaking) > 0
    assert ts_lib.point_in_time_violations(shipped) == 0
    report = verify_point_in_time(leaking, lake.store)  # the check, on the leaking rows: the values differ too
    assert not report.passed and len(report.mismatches) > 20, report
    correct, leaked = _validation_score(shipped), _validation_score(leaking)
    print(f"validation rank correlation: correct {correct:.3f}, leaking {leaked:.3f}")
    assert correct > 0.1  # the planted signal is learnable without the future
    assert leaked > correct + 0.1  # and the future makes it look clearly better


def test_the_check_names_a_future_like_planted_in_user_activitys_values(feature_lake) -> None:
    """A leak the join's predicate cannot see: the `user_activity` row a sampled photo joins
    (ts <= posted_at) counts one like received more, as if a like after posted_at had been
    counted. Every features_as_of is still <= posted_at; the brute-force reference from the
    staged events names that photo and feature."""
    lake, _ = feature_lake
    days = sorted(lake.manifest["days"])
    shipped = pa.concat_tables(lake.store.read_parquet(partition_key("features/training_set", d)) for d in days)
    activity = pa.concat_tables(lake.store.read_parquet(partition_key(USER_ACTIVITY_PATH, d)) for d in days)
    start = shipped["posted_at"][0].as_py().replace(hour=0, minute=0, second=0, microsecond=0)

    def joined(activity: pa.Table) -> pa.Table:
        return ts_lib.compute_training_set(
            lake.store.read_parquet("features/photo_features.parquet"),
            pa.concat_tables(lake.store.read_parquet(partition_key("features/popularity_labels", d)) for d in days),
            activity,
            start,
            datetime.fromisoformat(days[-1]).replace(tzinfo=start.tzinfo),
        )

    sample = sample_rows(shipped)
    for feature in ("author_likes_received_7d", "author_sessions_7d", "author_posts_30d", "author_logins_today"):
        assert pa.compute.sum(sample[feature]).as_py() > 0, feature  # the sample compares non-trivial values
    target = next(r for r in sample.to_pylist() if r["features_as_of"] is not None)
    hit = pa.compute.and_(
        pa.compute.equal(activity["user_id"], target["user_id"]),
        pa.compute.equal(activity["ts"], pa.scalar(target["features_as_of"], activity.schema.field("ts").type)),
    )
    column = activity.schema.get_field_index("likes_received_7d")
    planted = activity.set_column(
        column,
        "likes_received_7d",
        pa.compute.if_else(hit, pa.compute.add(activity["likes_received_7d"], 1), activity["likes_received_7d"]),
    )
    assert pa.compute.sum(hit).as_py() == 1

    assert verify_point_in_time(joined(activity), lake.store).passed  # the same join, unplanted
    report = verify_point_in_time(joined(planted), lake.store)
    assert not report.passed and report.as_of_after_posted == 0  # the old check would have passed
    expected = target["author_likes_received_7d"]
    assert (target["photo_id"], "author_likes_received_7d", expected, expected + 1) in report.mismatches
    assert {m.feature for m in report.mismatches} == {"author_likes_received_7d"}


def test_affected_range_reaches_the_windows_of_a_late_day() -> None:
    have = {f"2026-11-{d:02d}" for d in range(1, 31)}
    assert affected_range({"2026-11-03"}, have) == ("2026-11-02", "2026-11-30")
    assert affected_range({"2026-11-01"}, {"2026-11-01", "2026-11-02"}) == ("2026-11-01", "2026-11-02")
    assert affected_range(set(), have) is None


def test_activity_is_read_again_when_its_events_are_rewritten_meanwhile(fresh_lake, instance, monkeypatch) -> None:
    """A follow-on run that read a day's events just before a new file's run rewrote them must
    not write stale activity over the fresh one: it sees the newer events materialization after
    computing, reads again, and writes (and stamps) activity from the new events."""
    import time

    from platform_assets.defs.features import assets as feature_assets
    from platform_assets.defs.keys import EVENTS

    resources, day = fresh_lake.resources(), sorted(fresh_lake.manifest["days"])[-1]
    assert dg.materialize(
        [raw_users, raw_photos, stage_users, stage_photos], resources=resources, instance=instance
    ).success
    assert dg.materialize([stage_events], partition_key=day, resources=resources, instance=instance).success
    (events_file,) = day_parts(fresh_lake.store, EVENTS_PATH, day)
    calls, rewritten_at, compute = [], [], feature_assets.user_activity_of_day

    def rewritten_while_reading(day_, events_of, *args):
        calls.append(events_of(date.fromisoformat(day)).rows)
        tables = list(compute(day_, events_of, *args))
        if len(calls) == 1:  # the other run: half of the day's events now, and its materialization recorded
            full = fresh_lake.store.read_parquet(events_file)
            fresh_lake.store.write_parquet(events_file, full.slice(0, full.num_rows // 2))
            instance.report_runless_asset_event(dg.AssetMaterialization(EVENTS, partition=day))
            rewritten_at.append(time.time())
        return tables

    monkeypatch.setattr(feature_assets, "user_activity_of_day", rewritten_while_reading)
    result = dg.materialize([user_activity], partition_key=day, resources=resources, instance=instance)
    assert result.success and len(calls) == 2 and calls[1] < calls[0]
    (materialization,) = result.asset_materializations_for_node("features__user_activity")
    assert materialization.metadata["events_read_at"].value > rewritten_at[0]
    written = fresh_lake.store.read_parquet(partition_key(USER_ACTIVITY_PATH, day))

    monkeypatch.setattr(feature_assets, "user_activity_of_day", compute)  # the same range again, nothing rewritten
    assert dg.materialize([user_activity], partition_key=day, resources=resources, instance=instance).success
    assert written.equals(fresh_lake.store.read_parquet(partition_key(USER_ACTIVITY_PATH, day)))


def test_day_by_day_runs_give_what_the_whole_range_at_once_gives(feature_lake) -> None:
    """The ranged run computes a day at a time (activity from tiles and two raw days, labels from
    the day and the next): the same rows as one computation over every event of the range."""
    from datetime import UTC, datetime, timedelta

    from platform_assets.lib.features.labels import compute_labels
    from platform_assets.lib.features.user_activity import compute_user_activity
    from platform_assets.lib.lake_layout import LABELS_PATH, read_days, staging_key
    from platform_assets.lib.staging.events import EVENTS_SCHEMA

    lake, _ = feature_lake
    store, days = lake.store, sorted(lake.manifest["days"])
    events = read_days(store, EVENTS_PATH, days, EVENTS_SCHEMA)
    photos, users = store.read_parquet(staging_key("photos")), store.read_parquet(staging_key("users"))
    start = datetime.fromisoformat(days[0]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(days[-1]).replace(tzinfo=UTC) + timedelta(days=1)

    def written(dataset: str, order: list[str]) -> pa.Table:
        tables = [store.read_parquet(partition_key(dataset, d)) for d in days]
        return pa.concat_tables(tables).sort_by([(c, "ascending") for c in order])

    activity = compute_user_activity(events, photos, users, start, end)
    assert activity.num_rows > 10_000 and written(USER_ACTIVITY_PATH, ["user_id", "ts"]).equals(activity)
    labels = compute_labels(photos, events.to_batches(), start, end)
    assert written(LABELS_PATH, ["photo_id"]).equals(labels.sort_by("photo_id"))


def test_label_windows_close_on_the_latest_event_of_the_whole_range(tmp_path) -> None:
    """A day's labels are computed from that day and the next, but a window closes on the latest
    event the range's run reads (here a later day's, the next day not being staged), as when the
    range was read at once."""
    lake = make_lake(tmp_path, LakeScale(users=80, photos=120, days=3, events_per_day=3000, seed=5))
    resources, days = lake.resources(), sorted(lake.manifest["days"])
    assert dg.materialize([raw_users, raw_photos, stage_users, stage_photos], resources=resources).success
    for day in (days[0], days[2]):  # the middle day not staged
        assert dg.materialize([stage_events], partition_key=day, resources=resources).success
    assert dg.materialize([popularity_labels], resources=resources, tags=range_tags(days[0], days[1])).success
    first = lake.store.read_parquet(partition_key("features/popularity_labels", days[0]))
    assert first.num_rows > 20 and all(first["label_ready"].to_pylist())


def test_a_latest_activity_older_than_the_activity_it_covers_is_rebuilt(fresh_lake, instance) -> None:
    """A day's state starts from the day before's, which is trusted only while no user_activity
    day it covers was materialized after it read them, and only with its materialization on
    record (not a file from another instance): otherwise it is rebuilt from the 31 days."""
    from platform_assets.lib.features.latest_activity import rebuild_latest

    resources, days = fresh_lake.resources(), sorted(fresh_lake.manifest["days"])
    store, (before, day) = fresh_lake.store, days[-2:]
    assert dg.materialize(
        [raw_users, raw_photos, stage_users, stage_photos], resources=resources, instance=instance
    ).success
    for d in days:
        assert dg.materialize([stage_events], partition_key=d, resources=resources, instance=instance).success
    ranged = range_tags(days[0], days[-1])
    assert dg.materialize([user_activity, latest_activity], resources=resources, instance=instance, tags=ranged).success

    def activity_of(d: date) -> list[pa.RecordBatch] | None:
        key = partition_key(USER_ACTIVITY_PATH, d.isoformat())
        return store.read_parquet(key).to_batches() if store.exists(key) else None

    expected = rebuild_latest(date.fromisoformat(day), activity_of)
    assert expected.num_rows > 20 and store.read_parquet(partition_key(LATEST_ACTIVITY_PATH, day)).equals(expected)
    state_key = partition_key(LATEST_ACTIVITY_PATH, before)
    good = store.read_parquet(state_key)
    later = pa.compute.add(good["ts"], pa.scalar(86_400_000_000 * 10, pa.duration("us")))
    stale = good.set_column(good.schema.get_field_index("ts"), "ts", later)  # rows a rewrite replaced
    store.write_parquet(state_key, stale)

    assert dg.materialize([user_activity], partition_key=before, resources=resources, instance=instance).success
    assert dg.materialize([latest_activity], partition_key=day, resources=resources, instance=instance).success
    assert store.read_parquet(partition_key(LATEST_ACTIVITY_PATH, day)).equals(expected)

    store.write_parquet(state_key, stale)
    with dg.instance_for_test() as other:  # the lake, but none of its materializations
        assert dg.materialize([latest_activity], partition_key=day, resources=resources, instance=other).success
    assert store.read_parquet(partition_key(LATEST_ACTIVITY_PATH, day)).equals(expected)


def test_a_photo_nobody_touched_scores_zero_not_null() -> None:
    """A photo with no view, like, comment or share in its window has popularity ln(1) = 0: a
    null label would be NaN in the shards and turn both models' weights to NaN."""
    from datetime import UTC, datetime, timedelta

    from platform_assets.lib.features.labels import compute_labels
    from platform_assets.lib.staging.events import EVENTS_SCHEMA

    t0 = datetime(2026, 11, 1, 8, tzinfo=UTC)
    photos = pa.table({"photo_id": [1, 2], "posted_at": pa.array([t0, t0], pa.timestamp("us", tz="UTC"))})
    rows = [("e1", t0 + timedelta(hours=1), "like", 7, 1), ("e2", t0 + timedelta(days=2), "view", 7, 1)]
    events = pa.table(
        {
            "event_id": [r[0] for r in rows],
            "ts": pa.array([r[1] for r in rows], EVENTS_SCHEMA.field("ts").type),
            "event_type": [r[2] for r in rows],
            "user_id": [r[3] for r in rows],
            "photo_id": [r[4] for r in rows],
            "client": ["web"] * len(rows),
            "source_file": ["f"] * len(rows),
            "extra_json": pa.nulls(len(rows), pa.string()),
        },
        schema=EVENTS_SCHEMA,
    )
    labels = compute_labels(photos, events.to_batches(), t0 - timedelta(hours=8), t0 + timedelta(hours=16))
    scores = dict(zip(labels["photo_id"].to_pylist(), labels["popularity_score"].to_pylist()))
    assert scores[1] == pytest.approx(np.log(1 + 3)) and scores[2] == 0.0

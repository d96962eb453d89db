"""The `features` layer: what was known about each photo and its author when it was posted.

Log-derived assets are daily partitions that run as one job over a range of days (single-run
backfills), because a day's rows depend on earlier days: user_activity on 30 days of events,
latest_activity and so training_set on 31 days of user_activity.
"""

import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.defs.keys import (
    ACTIVITY_TILES,
    EVENTS,
    LABELS,
    LATEST_ACTIVITY,
    PHOTO_FEATURES,
    PHOTOS,
    TRAINING_SET,
    USER_ACTIVITY,
    USERS,
)
from platform_assets.defs.materializations import latest_materialization, materialized_since
from platform_assets.defs.metadata import column_schema, table_metadata
from platform_assets.defs.partitions import daily, partition_window
from platform_assets.defs.resources import LakeResource
from platform_assets.defs.retry import IO_RETRY, fail_fast_unless_transient
from platform_assets.lib.features.labels import LABELS_SCHEMA, compute_labels
from platform_assets.lib.features.latest_activity import (
    AS_OF_DAYS,
    LATEST_ACTIVITY_SCHEMA,
    fold_latest,
    rebuild_latest,
)
from platform_assets.lib.features.photo_features import PHOTO_FEATURES_SCHEMA, photo_features_batches
from platform_assets.lib.features.point_in_time_reference import (
    DAYS_BACK,
    SAMPLE_DAYS,
    SAMPLE_PHOTOS,
    mismatch_rows,
    verify_point_in_time,
)
from platform_assets.lib.features.training_set import TRAINING_SET_SCHEMA, compute_training_set
from platform_assets.lib.features.user_activity import (
    ACTIVITY_ROW_GROUP,
    BATCH_ROWS,
    EDGE_DAYS,
    EVENT_COLUMNS,
    LOOKBACK_DAYS,
    TILE_ROW_GROUP,
    TILE_SCHEMA,
    USER_ACTIVITY_SCHEMA,
    DayEvents,
    UserRange,
    before_from_events,
    before_from_tile,
    compute_activity_tile,
    user_activity_of_day,
)
from platform_assets.lib.lake_layout import (
    ACTIVITY_TILES_PATH,
    EVENTS_PATH,
    LABELS_PATH,
    LATEST_ACTIVITY_PATH,
    PHOTO_FEATURES_FILE,
    TABLE_ROW_GROUP_ROWS,
    TRAINING_SET_PATH,
    USER_ACTIVITY_PATH,
    day_parts,
    day_range,
    partition_key,
    posted_on,
    read_days,
    staging_key,
)
from platform_assets.lib.lake_store import LakeStore, write_parquet_stream

_RANGED = {"partitions_def": daily, "backfill_policy": dg.BackfillPolicy.single_run(), "group_name": "features"}


def _days_metadata(store: LakeStore, dataset: str, rows: int, size: int) -> dict:
    """What a step that wrote `dataset` a day at a time reports: rows and bytes of all its days."""
    return {"dagster/row_count": rows, "bytes": size, "dagster/uri": dg.MetadataValue.path(store.uri(f"{dataset}/"))}


def _write_days(context: dg.AssetExecutionContext, store: LakeStore, dataset: str, table, ts_column: str) -> dict:
    """One Parquet file per day of the run's range; metadata of the whole range."""

    first, last = partition_window(context)
    days = pc.strftime(table[ts_column], format="%Y-%m-%d")
    total = 0
    for day in day_range(first, last):
        total += store.write_parquet(partition_key(dataset, day), table.filter(pc.equal(days, day)))
    return table_metadata(table, store.uri(f"{dataset}/"), total) | {"days": len(day_range(first, last))}


# Two runs write user activity: a new log file's own run (its day, in one hop) and the ranged
# follow-on runs. One that read a day's events just before the other run rewrote them must not
# write over fresher activity, so the step checks the event log after computing and reads again.
EVENTS_READ_ATTEMPTS = 3
EVENTS_READ_AT = "events_read_at"


class _Days:
    """Reads of the lake by day for steps that walk a range of days: a day's events streamed a
    batch at a time (a day holds millions), a tile's rows a range of users at a time. A tile
    the lake lacks (a day staged before tiles existed) is computed from its events, once."""

    def __init__(self, store: LakeStore, photos: pa.Table, users: pa.Table, log) -> None:
        self.store, self.photos, self.users, self.log = store, photos, users, log
        self.computed: dict[date, pa.Table] = {}  # tiles the lake lacks, computed once

    def events(self, day: date) -> DayEvents:
        keys = day_parts(self.store, EVENTS_PATH, day.isoformat())
        return DayEvents(self.store.parquet_rows(keys), self.store.iter_parquet(keys, EVENT_COLUMNS, BATCH_ROWS))

    def tile(self, day: date, users: UserRange) -> pa.Table:
        """The rows of `day`'s tile in a range of users (a read of their row groups only)."""
        key = partition_key(ACTIVITY_TILES_PATH, day.isoformat())
        if day not in self.computed and self.store.exists(key):
            return self.store.read_parquet(key, where=users.where)
        if day not in self.computed:
            if day_parts(self.store, EVENTS_PATH, day.isoformat()):
                self.log.info(f"no activity tile for {day}: computed from its events")
            self.computed[day] = compute_activity_tile(self.events(day), self.before(day), self.photos, self.users, day)
        return users.rows(self.computed[day])

    def before(self, day: date) -> pa.Table:
        """Each user's last event of the day before `day`, from that day's events."""
        return before_from_events(self.events(day - timedelta(days=1)), day)


def _activity_photos(store: LakeStore) -> pa.Table:
    """The columns of the staged photos the activity reads: authors of posts and of liked photos."""
    return store.read_parquet(staging_key("photos"), columns=["photo_id", "user_id", "posted_at"])


def _activity_users(store: LakeStore) -> pa.Table:
    """The columns of the staged users the activity reads (a million users hold more than these)."""
    return store.read_parquet(staging_key("users"), columns=["user_id", "signup_at"])


def _user_ids(store: LakeStore) -> pa.Table:
    """The staged users' ids: where the ranges of users a day is computed in are cut."""
    return store.read_parquet(staging_key("users"), columns=["user_id"])


@dg.asset(
    retry_policy=IO_RETRY,
    key=ACTIVITY_TILES,
    deps=[dg.AssetDep(EVENTS, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1)), PHOTOS],
    kinds={"duckdb", "parquet"},
    description="Per user and UTC day: logins, likes given and received, sessions started, last event. The "
    "days wholly inside a 7-day window, so user activity reads raw events of only two days.",
    metadata={"dagster/column_schema": column_schema(TILE_SCHEMA)},
    **_RANGED,
)
@fail_fast_unless_transient
def activity_tiles(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    store = lake.store()
    first, last = partition_window(context)
    photos, users = _activity_photos(store), _user_ids(store)
    days = _Days(store, photos, users, context.log)
    rows = size = 0
    before = days.before(first)
    for day in map(date.fromisoformat, day_range(first, last)):  # each day's events read once
        tile = compute_activity_tile(days.events(day), before, photos, users, day)
        size += store.write_parquet(partition_key(ACTIVITY_TILES_PATH, day.isoformat()), tile, TILE_ROW_GROUP)
        rows += tile.num_rows
        before = before_from_tile(tile, day + timedelta(days=1))
    return dg.MaterializeResult(metadata=_days_metadata(store, ACTIVITY_TILES_PATH, rows, size))


@dg.asset(
    retry_policy=IO_RETRY,
    key=USER_ACTIVITY,
    deps=[
        dg.AssetDep(EVENTS, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-max(EDGE_DAYS))),
        dg.AssetDep(ACTIVITY_TILES, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-8, end_offset=-1)),
        PHOTOS,
        USERS,
    ],
    kinds={"duckdb", "parquet"},
    description="Each user's activity features as exact step functions of time (see columns).",
    metadata={
        "dagster/column_schema": column_schema(USER_ACTIVITY_SCHEMA),
        "time_semantics": "as-of: value at ts until the user's next row",
    },
    **_RANGED,
)
@fail_fast_unless_transient
def user_activity(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    store = lake.store()
    first, last = partition_window(context)
    photos, users = _activity_photos(store), _activity_users(store)
    days = _Days(store, photos, users, context.log)  # tiles kept across the range's days
    rows = size = 0
    head = USER_ACTIVITY_SCHEMA.empty_table()
    with tempfile.TemporaryDirectory(prefix="user-activity-") as tmp:
        written = Path(tmp) / "day.parquet"
        for day in map(date.fromisoformat, day_range(first, last)):
            inputs = [(day - timedelta(days=k)).isoformat() for k in EDGE_DAYS]
            for attempt in range(1, EVENTS_READ_ATTEMPTS + 1):
                read_at = time.time()
                if attempt > 1:  # the events changed meanwhile: their tiles too, maybe
                    days = _Days(store, photos, users, context.log)
                day_rows, day_head = write_parquet_stream(
                    written,
                    USER_ACTIVITY_SCHEMA,
                    user_activity_of_day(day, days.events, days.tile, photos, users),
                    ACTIVITY_ROW_GROUP,
                )
                rewritten = materialized_since(context.instance, EVENTS, inputs, read_at)
                if not rewritten:
                    break
                if attempt == EVENTS_READ_ATTEMPTS:
                    context.log.warning(
                        f"events of {rewritten} kept changing; writing what was read (the run their change set off rewrites it)"
                    )
                else:
                    context.log.info(
                        f"events of {rewritten} were rewritten while this step read them (try {attempt}): reading again"
                    )
            size += store.put_file(partition_key(USER_ACTIVITY_PATH, day.isoformat()), written)
            rows += day_rows
            head = head if head.num_rows else day_head
    metadata = table_metadata(head, store.uri(f"{USER_ACTIVITY_PATH}/"), size, row_count=rows)
    return dg.MaterializeResult(
        metadata=metadata | {"days": (last - first).days + 1, EVENTS_READ_AT: dg.MetadataValue.timestamp(read_at)}
    )


STATE_READ_AT = "activity_read_at"


def _activity_batches(store: LakeStore, day: date) -> Iterator[pa.RecordBatch] | None:
    """A day's user_activity rows a batch at a time; None for a day never computed."""
    key = partition_key(USER_ACTIVITY_PATH, day.isoformat())
    return store.iter_parquet([key], USER_ACTIVITY_SCHEMA.names, BATCH_ROWS) if store.exists(key) else None


def _authors_activity(store: LakeStore, day: date, authors: pc.Expression) -> Iterator[pa.RecordBatch]:
    """A day's user_activity rows of `authors`, a batch at a time (filtered as read: the day holds millions)."""
    key = partition_key(USER_ACTIVITY_PATH, day.isoformat())
    return store.iter_parquet([key], USER_ACTIVITY_SCHEMA.names, BATCH_ROWS, authors) if store.exists(key) else iter(())


def _latest_as_of(
    context: dg.AssetExecutionContext, store: LakeStore, day: date, authors: pc.Expression | None = None
) -> pa.Table:
    """The `latest_activity` state of `day` (only the rows of `authors`, when given): read when
    the lake has it and no user_activity day it covers was materialized since it read them;
    else rebuilt from those 31 days."""
    key = partition_key(LATEST_ACTIVITY_PATH, day.isoformat())
    covered = day_range(day - timedelta(days=AS_OF_DAYS - 1), day)
    if store.exists(key):
        state = latest_materialization(context.instance, LATEST_ACTIVITY, day.isoformat())
        read_at = state and state.asset_materialization.metadata.get(STATE_READ_AT)
        if read_at is not None:
            changed = materialized_since(context.instance, USER_ACTIVITY, covered, read_at.value)
            if not changed:
                return store.read_parquet(key, where=authors)
            context.log.info(f"latest_activity of {day} is older than user_activity of {changed}: rebuilt")
    context.log.info(f"latest_activity of {day} rebuilt from user_activity of {covered[0]}..{covered[-1]}")
    state = rebuild_latest(day, lambda d: _activity_batches(store, d))
    return state if authors is None else state.filter(authors)


@dg.asset(
    retry_policy=IO_RETRY,
    key=LATEST_ACTIVITY,
    deps=[dg.AssetDep(USER_ACTIVITY, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-LOOKBACK_DAYS))],
    kinds={"duckdb", "parquet"},
    description="Each user's latest user_activity row over the 31 days up to the day's end: the next day's "
    "training set joins against it instead of 31 days of activity rows.",
    metadata={"dagster/column_schema": column_schema(LATEST_ACTIVITY_SCHEMA)},
    **_RANGED,
)
@fail_fast_unless_transient
def latest_activity(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    store = lake.store()
    first, last = partition_window(context)
    read_at = time.time()
    state = _latest_as_of(context, store, first - timedelta(days=1))
    rows = size = 0
    for day in map(date.fromisoformat, day_range(first, last)):
        state = fold_latest(state, _activity_batches(store, day) or [], day)
        size += store.write_parquet(partition_key(LATEST_ACTIVITY_PATH, day.isoformat()), state)
        rows += state.num_rows
    return dg.MaterializeResult(
        metadata=_days_metadata(store, LATEST_ACTIVITY_PATH, rows, size)
        | {STATE_READ_AT: dg.MetadataValue.timestamp(read_at)}
    )


@dg.asset(
    retry_policy=IO_RETRY,
    key=LABELS,
    deps=[PHOTOS, dg.AssetDep(EVENTS, partition_mapping=dg.TimeWindowPartitionMapping(end_offset=1))],
    kinds={"duckdb", "parquet"},
    description="Views, likes, comments and shares in the 24 h after posting; partitioned by posting day.",
    metadata={"dagster/column_schema": column_schema(LABELS_SCHEMA)},
    **_RANGED,
)
@fail_fast_unless_transient
def popularity_labels(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    store = lake.store()
    first, last = partition_window(context)
    photos = store.read_parquet(staging_key("photos"))
    days = _Days(store, photos, _user_ids(store), context.log)
    read = [key for d in day_range(first, last + timedelta(days=1)) for key in day_parts(store, EVENTS_PATH, d)]
    watermark = store.column_max(read, "ts")  # the latest event the range's reads see, as one read of them all would
    rows = size = ready = 0
    for day in map(date.fromisoformat, day_range(first, last)):  # a day's labels read that day and the next
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        events = chain(days.events(day).batches, days.events(day + timedelta(days=1)).batches)
        table = compute_labels(photos, events, start, start + timedelta(days=1), watermark)
        size += store.write_parquet(partition_key(LABELS_PATH, day.isoformat()), table)
        rows, ready = rows + table.num_rows, ready + sum(table["label_ready"].to_pylist())
    return dg.MaterializeResult(
        metadata=_days_metadata(store, LABELS_PATH, rows, size)
        | {
            "days": (last - first).days + 1,
            "labels_ready": ready,
            "labels_pending": rows - ready,
        }
    )


@dg.asset(
    retry_policy=IO_RETRY,
    key=PHOTO_FEATURES,
    deps=[PHOTOS, USERS],
    group_name="features",
    kinds={"polars", "parquet"},
    description="Posting hour and weekday in the author's time zone, title length, location cell, author tenure.",
    metadata={"dagster/column_schema": column_schema(PHOTO_FEATURES_SCHEMA)},
)
@fail_fast_unless_transient
def photo_features(lake: LakeResource) -> dg.MaterializeResult:
    store = lake.store()
    users = store.read_parquet(staging_key("users"), columns=["user_id", "signup_at", "timezone"])
    photos = store.iter_parquet([staging_key("photos")], None, BATCH_ROWS)  # staged in photo id order
    written = store.write_parquet_batches(
        PHOTO_FEATURES_FILE, PHOTO_FEATURES_SCHEMA, photo_features_batches(photos, users), TABLE_ROW_GROUP_ROWS
    )
    return dg.MaterializeResult(
        metadata=table_metadata(written.head, store.uri(PHOTO_FEATURES_FILE), written.bytes, row_count=written.rows)
    )


@dg.asset(
    retry_policy=IO_RETRY,
    key=TRAINING_SET,
    deps=[
        PHOTO_FEATURES,
        LABELS,
        USER_ACTIVITY,
        dg.AssetDep(
            LATEST_ACTIVITY,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
            ),
        ),
    ],
    kinds={"duckdb", "parquet"},
    description="One row per labelled photo: photo features, the author's activity as of posted_at (ASOF join), the label.",
    metadata={"dagster/column_schema": column_schema(TRAINING_SET_SCHEMA)},
    check_specs=[
        dg.AssetCheckSpec(
            "point_in_time_correct",
            asset=TRAINING_SET,
            description=f"Recomputes the author features of up to {SAMPLE_PHOTOS} of the run's training rows "
            f"(from at most {SAMPLE_DAYS} posting days: the last and one picked by a hash of the date; the "
            "rows by a hash of photo_id) as of posted_at, by brute force from staging/events and "
            "staging/photos, sharing no code with user_activity or the as-of join; passes when every "
            "sampled value equals the row's (counts exactly) and no row's features_as_of is after posted_at.",
            additional_deps=[
                dg.AssetDep(EVENTS, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-DAYS_BACK)),
                PHOTOS,
            ],
        )
    ],
    **_RANGED,
)
@fail_fast_unless_transient
def training_set(context: dg.AssetExecutionContext, lake: LakeResource):
    store = lake.store()
    first, last = partition_window(context)
    if not store.exists(PHOTO_FEATURES_FILE):
        raise dg.Failure(
            f"{store.uri(PHOTO_FEATURES_FILE)} does not exist: materialize features/photo_features (app_db_job)"
        )
    days = []
    for day in map(date.fromisoformat, day_range(first, last)):  # a day: its rows and the state before it
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        photos = store.read_parquet(PHOTO_FEATURES_FILE, where=posted_on(day.isoformat()))
        authors = pc.field("user_id").isin(pc.unique(photos["user_id"]))  # the join reads no one else's rows
        before = _latest_as_of(context, store, day - timedelta(days=1), authors)
        activity = chain([before], _authors_activity(store, day, authors))
        days.append(
            compute_training_set(
                photos,
                read_days(store, LABELS_PATH, [day.isoformat()], LABELS_SCHEMA),
                activity,
                start,
                start + timedelta(days=1),
            )
        )
    table = pa.concat_tables(days)
    yield dg.MaterializeResult(metadata=_write_days(context, store, TRAINING_SET_PATH, table, "posted_at"))
    report = verify_point_in_time(table, store)
    yield dg.AssetCheckResult(
        check_name="point_in_time_correct",
        passed=report.passed,
        metadata={
            "rows": table.num_rows,
            "sampled_rows": report.sampled,
            "sample_days": ", ".join(report.days),
            "events_read": report.events_read,
            "mismatches": len(report.mismatches),
            "mismatch_examples": dg.MetadataValue.json(mismatch_rows(report)),
            "features_as_of_after_posted_at": report.as_of_after_posted,
            "seconds": round(report.seconds, 3),
        },
    )

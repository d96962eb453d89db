"""Benchmark: the cost of one training day (its `latest_activity` and `training_set`) as the
history before it grows.

    .venv/bin/python -m benchmarks.training_history [--events-per-day 1000000] [--users 100000]
        [--history 1,30] [--repeats 3] [--ways state,31-days]

It reuses `benchmarks.activity_history`'s lake (its days of events and tiles) and computes
each day's `user_activity` once, as the asset does. Each measurement is a fresh process that
builds the last day, with `--history` days of activity rows before it:
- state (what the assets do): read the day before's `latest_activity` (folded beforehand over
  the history), fold the day's rows into it and write it, then join the day's photos against
  the state and the day's rows;
- 31 days (the baseline, how `training_set` read before): join against every activity row of
  the 31 days before and of the day.
Both give the same training rows (checked by hash). It prints wall and CPU seconds, peak RSS
and the activity rows each way read.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.activity_history import LAST_DAY, make_lake
from benchmarks.common import bench_parser, history_medians, peak_rss_mb, print_history_ratios, rows_digest
from platform_assets.lib.features.labels import LABELS_SCHEMA
from platform_assets.lib.features.latest_activity import AS_OF_DAYS, fold_latest
from platform_assets.lib.features.photo_features import PHOTO_FEATURES_SCHEMA
from platform_assets.lib.features.user_activity import EVENT_COLUMNS, USER_ACTIVITY_SCHEMA
from platform_assets.lib.lake_layout import (
    ACTIVITY_TILES_PATH,
    EVENTS_PATH,
    LATEST_ACTIVITY_PATH,
    USER_ACTIVITY_PATH,
    partition_key,
)
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.staging.events import EVENTS_SCHEMA


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def write_activity(store: LakeStore, days: list[date]) -> None:
    """Each day's user_activity rows, from its events and tiles, as the asset computes them."""
    from platform_assets.lib.features.user_activity import (
        DayEvents,
        UserRange,
        before_from_events,
        compute_activity_tile,
        user_activity_of_day,
    )

    photos, users = store.read_parquet("staging/photos.parquet"), store.read_parquet("staging/users.parquet")

    def events_of(day: date) -> DayEvents:
        key = partition_key(EVENTS_PATH, day.isoformat())
        if not store.exists(key):  # before the lake's first day
            return DayEvents.of(EVENTS_SCHEMA.empty_table())
        return DayEvents.of(store.read_parquet(key, columns=EVENT_COLUMNS))

    def tile_of(day: date, ids: UserRange) -> pa.Table:
        key = partition_key(ACTIVITY_TILES_PATH, day.isoformat())
        if store.exists(key):
            return store.read_parquet(key, where=ids.where)
        before = before_from_events(DayEvents.of(EVENTS_SCHEMA.empty_table()), day)
        return ids.rows(compute_activity_tile(events_of(day), before, photos, users, day))

    for day in days:
        key = partition_key(USER_ACTIVITY_PATH, day.isoformat())
        if not store.exists(key):
            rows = user_activity_of_day(day, events_of, tile_of, photos, users)
            store.write_parquet(key, pa.concat_tables(rows))


def state_before(store: LakeStore, history: int) -> str:
    """The key of the last day's `latest_activity` state of the day before, folded over `history` days."""
    key = f"bench/latest-before-{history}d.parquet"
    if not store.exists(key):
        state = USER_ACTIVITY_SCHEMA.empty_table()
        for back in range(history, 0, -1):
            day = LAST_DAY - timedelta(days=back)
            rows = store.read_parquet(partition_key(USER_ACTIVITY_PATH, day.isoformat()))
            state = fold_latest(state, rows.to_batches(), day)
        store.write_parquet(key, state)
    return key


def day_entities(store: LakeStore) -> tuple[pa.Table, pa.Table]:
    """The last day's photos as `photo_features` and `labels` rows (their values do not change
    the join's cost). The lake's photos end the day before, so that day's are moved onto it."""
    photos = store.read_parquet("staging/photos.parquet")
    start = _midnight(LAST_DAY - timedelta(days=1))
    day = photos.filter((pc.field("posted_at") >= start) & (pc.field("posted_at") < start + timedelta(days=1)))
    moved = pc.add(day["posted_at"], pa.scalar(timedelta(days=1), pa.duration("us")))
    day = day.set_column(day.schema.get_field_index("posted_at"), "posted_at", moved)
    n = day.num_rows

    def filled(schema: pa.Schema) -> pa.Table:
        cols = {}
        for field in schema:
            if field.name in day.column_names:
                cols[field.name] = day[field.name]
            elif pa.types.is_boolean(field.type):
                cols[field.name] = pa.array(np.ones(n, bool))
            elif pa.types.is_string(field.type):
                cols[field.name] = pa.array(["cell"] * n)
            else:
                cols[field.name] = pa.array(np.arange(n) % 7, field.type)
        return pa.table(cols, schema=schema)

    return filled(PHOTO_FEATURES_SCHEMA), filled(LABELS_SCHEMA)


def child(args) -> None:
    from platform_assets.lib.features.training_set import compute_training_set

    store = LakeStore(str(Path(args.base) / "lake"))
    history = int(args.history_n)
    features, labels = day_entities(store)
    started, cpu = time.perf_counter(), time.process_time()
    today = store.read_parquet(partition_key(USER_ACTIVITY_PATH, LAST_DAY.isoformat()))
    if args.child == "state":
        before = store.read_parquet(state_before(store, history))
        store.write_parquet(
            partition_key(LATEST_ACTIVITY_PATH, LAST_DAY.isoformat()), fold_latest(before, today.to_batches(), LAST_DAY)
        )
        activity = pa.concat_tables([before, today])
    else:
        back = range(min(history, AS_OF_DAYS), 0, -1)
        days = [LAST_DAY - timedelta(days=k) for k in back]
        activity = pa.concat_tables(
            [store.read_parquet(partition_key(USER_ACTIVITY_PATH, d.isoformat())) for d in days] + [today]
        )
    start = _midnight(LAST_DAY)
    rows = compute_training_set(features, labels, activity, start, start + timedelta(days=1))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "peak_mb": peak_rss_mb(),
                "rows": rows.num_rows,
                "activity_rows": activity.num_rows,
                "sha": rows_digest(rows),
            }
        )
    )


def main() -> None:
    parser = bench_parser("history_n")
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--photos", type=int, default=300_000)
    parser.add_argument("--history", default="1,30")
    parser.add_argument("--ways", default="state,31-days")
    args = parser.parse_args()
    base = Path(args.base) / f"activity-history-{args.events_per_day}-{args.users}"
    if args.child:
        args.base = str(base)
        return child(args)
    histories = [int(h) for h in args.history.split(",")]
    days = [LAST_DAY - timedelta(days=k) for k in range(max(histories), -1, -1)]
    made = time.perf_counter()
    store = make_lake(base, days, args.events_per_day, args.users, args.photos)
    write_activity(store, days)
    for history in histories:
        state_before(store, history)
    print(f"lake: {len(days)} days of {args.events_per_day:,} events, {args.users:,} users, their activity rows "
          f"({time.perf_counter() - made:.0f} s to make or reuse)")  # fmt: skip
    ways = args.ways.split(",")
    child_args = ["--base", args.base, "--events-per-day", str(args.events_per_day), "--users", str(args.users)]
    median = history_medians("benchmarks.training_history", ways, histories, args.repeats, child_args)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; median of {args.repeats}")
    print("| days of history | way | wall s | CPU s | peak RSS | activity rows read | training rows | rows sha |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for history in histories:
        for way in ways:
            r = median[(way, history)]
            print(f"| {history} | {way} | {r['seconds']:.2f} | {r['cpu']:.2f} | {r['peak_mb']:,.0f} MB | "
                  f"{r['activity_rows']:,} | {r['rows']:,} | {r['sha']} |")  # fmt: skip
    print_history_ratios(median, ways, histories)


if __name__ == "__main__":
    main()

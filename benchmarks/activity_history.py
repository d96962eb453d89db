"""Benchmark: the cost of one day of `user_activity` as the history before it grows.

    .venv/bin/python -m benchmarks.activity_history [--events-per-day 1000000] [--users 100000]
        [--history 1,7,30] [--repeats 3] [--ways tiles,all-raw]

Synthetic days of events (logins, likes, views, comments over `--users` users and their
photos, uniform over the day) are written as the lake stores them (`staging/events/dt=…`,
the columns the activity reads) with each day's `activity_tiles`. Each measurement is a fresh
process that computes the rows of the last day, with `--history` days of events before it:
- tiles: `user_activity_of_day` as the asset runs it (raw events of the day and of 7 days
  before, the tiles of the 6 between, read from Parquet);
- all raw (the baseline, the way the asset worked before): every event of the 30 days before
  and of the day itself, in one `compute_user_activity`.
Both give the same rows (checked by hash). It prints wall and CPU seconds and peak RSS.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.common import bench_parser, history_medians, peak_rss_mb, print_history_ratios, rows_digest
from platform_assets.lib.features.user_activity import EVENT_COLUMNS, LOOKBACK_DAYS
from platform_assets.lib.lake_layout import ACTIVITY_TILES_PATH, EVENTS_PATH, day_range, partition_key
from platform_assets.lib.lake_store import LakeStore

LAST_DAY = date(2026, 11, 30)
TYPES = np.array(["login", "like", "view", "comment"])


def photos_and_users(users: int, photos: int) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(0)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    posted = np.datetime64("2026-10-01", "s") + np.sort(rng.integers(0, 60 * 86_400, photos)).astype("timedelta64[s]")
    photo_table = pa.table(
        {
            "photo_id": pa.array(np.arange(photos), pa.int64()),
            "user_id": pa.array(rng.integers(0, users, photos), pa.int64()),
            "posted_at": pa.array(posted, pa.timestamp("us", tz="UTC")),
        }
    )
    user_table = pa.table(
        {
            "user_id": pa.array(np.arange(users), pa.int64()),
            "signup_at": pa.array([start - timedelta(days=90)] * users, pa.timestamp("us", tz="UTC")),
        }
    )
    return photo_table, user_table


def events_of_day(day: date, n: int, users: int, photos: int) -> pa.Table:
    rng = np.random.default_rng(day.toordinal())
    start = np.datetime64(day.isoformat(), "us")
    kinds = TYPES[rng.choice(4, n, p=[0.1, 0.3, 0.5, 0.1])]
    photo = rng.integers(0, photos, n)
    return pa.table(
        {
            "user_id": pa.array(rng.integers(0, users, n), pa.int64()),
            "ts": pa.array(
                start + rng.integers(0, 86_400_000_000, n).astype("timedelta64[us]"), pa.timestamp("us", tz="UTC")
            ),
            "event_type": pa.array(kinds, pa.string()),
            "photo_id": pa.array(photo, pa.int64(), mask=kinds == "login"),
        }
    ).sort_by("ts")


def make_lake(base: Path, days: list[date], n: int, users: int, photos: int) -> LakeStore:
    from platform_assets.lib.features.user_activity import DayEvents, before_from_events, compute_activity_tile

    store = LakeStore(str(base / "lake"))
    photo_table, user_table = photos_and_users(users, photos)
    store.write_parquet("staging/photos.parquet", photo_table)
    store.write_parquet("staging/users.parquet", user_table)
    previous = None
    for day in days:
        key = partition_key(EVENTS_PATH, day.isoformat())
        if not store.exists(key):
            store.write_parquet(key, events_of_day(day, n, users, photos))
        events = store.read_parquet(key)
        tile_key = partition_key(ACTIVITY_TILES_PATH, day.isoformat())
        if not store.exists(tile_key):
            before = before_from_events(DayEvents.of(previous if previous is not None else events.slice(0, 0)), day)
            store.write_parquet(
                tile_key, compute_activity_tile(DayEvents.of(events), before, photo_table, user_table, day)
            )
        previous = events
    return store


def child(args) -> None:
    from platform_assets.lib.features.user_activity import (
        DayEvents,
        UserRange,
        before_from_events,
        compute_activity_tile,
        compute_user_activity,
        user_activity_of_day,
    )

    store = LakeStore(str(Path(args.base) / "lake"))
    history = int(args.history_n)
    photos = store.read_parquet("staging/photos.parquet")
    users = store.read_parquet("staging/users.parquet")
    first = LAST_DAY - timedelta(days=history)
    started, cpu = time.perf_counter(), time.process_time()

    def events_of(day: date) -> pa.Table:
        key = partition_key(EVENTS_PATH, day.isoformat())
        if day < first or not store.exists(key):
            return store.read_parquet(partition_key(EVENTS_PATH, LAST_DAY.isoformat()), columns=EVENT_COLUMNS).slice(
                0, 0
            )
        return store.read_parquet(key, columns=EVENT_COLUMNS)

    if args.child == "tiles":
        tiles = {}

        def tile_of(day: date, ids: UserRange) -> pa.Table:
            """The stored tile; the first day of the history has no day before it (as in all raw)."""
            if day not in tiles:
                if day <= first:
                    before = before_from_events(DayEvents.of(events_of(first).slice(0, 0)), day)
                    tiles[day] = compute_activity_tile(DayEvents.of(events_of(day)), before, photos, users, day)
                else:
                    tiles[day] = store.read_parquet(partition_key(ACTIVITY_TILES_PATH, day.isoformat()))
            return ids.rows(tiles[day])

        day_events = lambda day: DayEvents.of(events_of(day))  # noqa: E731
        rows = pa.concat_tables(user_activity_of_day(LAST_DAY, day_events, tile_of, photos, users))
    else:
        window = [date.fromisoformat(d) for d in day_range(LAST_DAY - timedelta(days=LOOKBACK_DAYS), LAST_DAY)]
        events = pa.concat_tables([events_of(d) for d in window])
        start = datetime.combine(LAST_DAY, datetime.min.time(), tzinfo=UTC)
        rows = compute_user_activity(events, photos, users, start, start + timedelta(days=1))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        json.dumps(
            {"seconds": seconds, "cpu": cpu, "peak_mb": peak_rss_mb(), "rows": rows.num_rows, "sha": rows_digest(rows)}
        )
    )


def main() -> None:
    parser = bench_parser("history_n")
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--photos", type=int, default=300_000)
    parser.add_argument("--history", default="1,7,30")
    parser.add_argument("--ways", default="tiles,all-raw", help="all raw needs every event of 31 days in memory")
    args = parser.parse_args()
    base = Path(args.base) / f"activity-history-{args.events_per_day}-{args.users}"
    if args.child:
        args.base = str(base)
        return child(args)
    histories = [int(h) for h in args.history.split(",")]
    days = [LAST_DAY - timedelta(days=k) for k in range(max(histories), -1, -1)]
    made = time.perf_counter()
    make_lake(base, days, args.events_per_day, args.users, args.photos)
    print(f"lake: {len(days)} days of {args.events_per_day:,} events, {args.users:,} users "
          f"({time.perf_counter() - made:.0f} s to make or reuse)")  # fmt: skip
    ways = args.ways.split(",")
    child_args = ["--base", args.base, "--events-per-day", str(args.events_per_day), "--users", str(args.users)]
    median = history_medians("benchmarks.activity_history", ways, histories, args.repeats, child_args)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; median of {args.repeats}; "
          f"ru_maxrss of this parent {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")  # fmt: skip
    print("| days of history | way | wall s | CPU s | peak RSS | rows | rows sha |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for history in histories:
        for way in ways:
            r = median[(way, history)]
            print(f"| {history} | {way} | {r['seconds']:.2f} | {r['cpu']:.2f} | {r['peak_mb']:,.0f} MB | "
                  f"{r['rows']:,} | {r['sha']} |")  # fmt: skip
    print_history_ratios(median, ways, histories)


if __name__ == "__main__":
    main()

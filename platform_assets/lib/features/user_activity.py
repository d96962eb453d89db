"""`user_activity`: each user's activity features as a piecewise-constant function of time.

A row (user_id, ts, features) holds the exact feature values from `ts` until the user's next
row. Rows are emitted at every instant a value can change — the user's own events, likes on
their photos, session starts, the moment an event leaves a 7- or 30-day window (1 µs after it
turns 7 or 30 days old), and the midnight after a day with logins — so an as-of join at any
time t returns the values at t exactly, never values from after t.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC as UTC_TZ
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.lib import duck
from platform_assets.lib.staging.arrow_utils import conform_to, described_schema
from platform_assets.lib.staging.events import EVENTS_SCHEMA

UTC = pa.timestamp("us", tz="UTC")
LOOKBACK_DAYS = 30  # the widest window: events this far before a day feed that day's rows
SESSION_GAP = "30 MINUTES"

USER_ACTIVITY_SCHEMA = described_schema(
    ("user_id", pa.int64(), "The user."),
    ("ts", UTC, "Values hold from this instant until the user's next row (as-of key)."),
    ("logins_today", pa.int64(), "Logins on ts's UTC calendar day, at or before ts."),
    ("likes_given_7d", pa.int64(), "Likes the user gave in [ts - 7 days, ts]."),
    ("likes_received_7d", pa.int64(), "Likes on the user's photos in [ts - 7 days, ts]."),
    (
        "posts_30d",
        pa.int64(),
        "Photos the user posted in [ts - 30 days, ts], by posted_at in the app database's photos.",
    ),
    (
        "sessions_7d",
        pa.int64(),
        f"Sessions started in [ts - 7 days, ts]; a session starts after {SESSION_GAP.lower()} without events.",
    ),
    ("days_since_signup", pa.float64(), "Days from signup to ts."),
)

# Per user and UTC day, what the 7-day windows sum: a day fully inside a window adds its tile,
# so a day's rows read raw events only for the window's two edge days (the day itself and the
# day 7 before). `last_ts` finds the session starts of the next day.
TILE_SCHEMA = described_schema(
    ("user_id", pa.int64(), "The user."),
    ("day", pa.date32(), "The UTC day."),
    ("logins", pa.int64(), "Logins that day."),
    ("likes_given", pa.int64(), "Likes the user gave that day."),
    ("likes_received", pa.int64(), "Likes on the user's photos that day."),
    ("sessions", pa.int64(), "Sessions the user started that day (the day before's last event counts)."),
    ("last_ts", UTC, "The user's last event that day; NULL when the user only received likes."),
)
EDGE_DAYS = (0, 7)  # days before the computed day whose raw events its rows read
TILE_ROW_GROUP = 65_536  # users per row group of a tile: a range of users reads only its own
ACTIVITY_ROW_GROUP = 65_536  # rows per row group of a day's activity: what its writer holds
# Raw events computed at once. A user's rows depend only on the user's own events, the likes
# on the user's photos and the user's tiles, so a day is computed a range of user ids at a
# time: DuckDB's sorts and windows hold one range, not 20 M events (two 10 M-event days). The
# events reach each range through a file per range on local disk, written a batch at a time,
# so memory follows this setting, not the day.
EVENTS_PER_USER_RANGE = 500_000
BATCH_ROWS = 1 << 17  # events read at a time (a batch of the 4 columns: about 4 MB)
TILE_DAYS = range(1, 7)  # days before it whose tiles they read
EVENT_COLUMNS = ["user_id", "ts", "event_type", "photo_id"]

# The session start test: an event more than the gap after the user's previous one. Within a
# UTC day by lag; the first event of a day against `before`, the user's last event the day before.
SESSIONS_SQL = f"""
CREATE TEMP TABLE session_starts AS
SELECT user_id, ts FROM (
    SELECT e.user_id, e.ts::TIMESTAMP AS ts,
           coalesce(lag(e.ts::TIMESTAMP) OVER (PARTITION BY e.user_id, date_trunc('day', e.ts::TIMESTAMP) ORDER BY e.ts),
                    b.last_ts::TIMESTAMP) AS prev
    FROM events AS e LEFT JOIN before AS b ON b.user_id = e.user_id AND b.day = date_trunc('day', e.ts::TIMESTAMP)
) WHERE prev IS NULL OR ts - prev > INTERVAL {SESSION_GAP}
"""

# `before` from raw events (every day read raw, or a tile's day before): each user's last event
# of a day, keyed by the day after it.
BEFORE_SQL = """
CREATE TEMP TABLE before AS
SELECT user_id, date_trunc('day', ts::TIMESTAMP) + INTERVAL 1 DAY AS day, max(ts) AS last_ts FROM {events} GROUP BY ALL
"""

TILE_SQL = """
WITH own AS (
    SELECT user_id, count(*) FILTER (event_type = 'login') AS logins, count(*) FILTER (event_type = 'like') AS likes_given,
           max(ts) AS last_ts
    FROM events GROUP BY user_id
), received AS (
    SELECT p.user_id, count(*) AS likes_received
    FROM events AS e JOIN photos AS p USING (photo_id) WHERE e.event_type = 'like' GROUP BY p.user_id
), starts AS (
    SELECT user_id, count(*) AS sessions FROM session_starts GROUP BY user_id
)
SELECT user_id, $day::DATE AS day, coalesce(logins, 0) AS logins, coalesce(likes_given, 0) AS likes_given,
       coalesce(likes_received, 0) AS likes_received, coalesce(sessions, 0) AS sessions, last_ts
FROM own FULL JOIN received USING (user_id) LEFT JOIN starts USING (user_id)
ORDER BY user_id
"""

ACTS_SQL = """
CREATE TEMP TABLE acts AS  -- what moves a feature, attributed to the user whose feature moves, with its weight
SELECT user_id, ts::TIMESTAMP AS ts, (event_type = 'login')::INT AS login, (event_type = 'like')::INT AS like_given,
       0 AS like_received, 0 AS post, 0 AS session
FROM events WHERE event_type IN ('login', 'like')
UNION ALL  -- posts from the app database, the source of truth for photos (a `post` log event can be lost or late)
SELECT user_id, posted_at::TIMESTAMP, 0, 0, 0, 1, 0 FROM photos
UNION ALL
SELECT p.user_id, e.ts::TIMESTAMP, 0, 0, 1, 0, 0
FROM events AS e JOIN photos AS p USING (photo_id) WHERE e.event_type = 'like'
UNION ALL
SELECT user_id, ts, 0, 0, 0, 0, 1 FROM session_starts
UNION ALL  -- whole days inside the 7-day windows, at their midnight: no row of the computed days sees them otherwise
SELECT user_id, day::TIMESTAMP, logins, likes_given, likes_received, 0, sessions FROM tiles
"""

POINTS_SQL = """
CREATE TEMP TABLE points AS  -- every instant in [range_start, range_end) where a value can change
SELECT DISTINCT user_id, ts FROM (
    SELECT user_id, ts FROM acts
    UNION ALL SELECT user_id, ts + INTERVAL 7 DAYS + INTERVAL 1 MICROSECOND FROM acts WHERE like_given + like_received + session > 0
    UNION ALL SELECT user_id, ts + INTERVAL 30 DAYS + INTERVAL 1 MICROSECOND FROM acts WHERE post > 0
    UNION ALL SELECT user_id, date_trunc('day', ts) + INTERVAL 1 DAY FROM acts WHERE login > 0
) WHERE ts >= $range_start AND ts < $range_end
"""

FEATURES_SQL = """
CREATE TEMP TABLE features AS
WITH timeline AS (
    SELECT user_id, ts, login, like_given, like_received, post, session, false AS is_point FROM acts
    UNION ALL
    SELECT user_id, ts, 0, 0, 0, 0, 0, true FROM points
), windowed AS (
    SELECT user_id, ts, is_point,
           sum(login) OVER (PARTITION BY user_id, date_trunc('day', ts) ORDER BY ts
                            RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)                 AS logins_today,
           sum(like_given) OVER w7    AS likes_given_7d,
           sum(like_received) OVER w7 AS likes_received_7d,
           sum(post) OVER w30         AS posts_30d,
           sum(session) OVER w7       AS sessions_7d
    FROM timeline
    WINDOW w7 AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND CURRENT ROW),
           w30 AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL 30 DAYS PRECEDING AND CURRENT ROW)
)
SELECT w.user_id, CAST(w.ts AS TIMESTAMPTZ) AS ts,
       w.logins_today::BIGINT AS logins_today, w.likes_given_7d::BIGINT AS likes_given_7d,
       w.likes_received_7d::BIGINT AS likes_received_7d, w.posts_30d::BIGINT AS posts_30d,
       w.sessions_7d::BIGINT AS sessions_7d,
       date_diff('second', u.signup_at::TIMESTAMP, w.ts) / 86400.0 AS days_since_signup
FROM windowed AS w LEFT JOIN users AS u USING (user_id)
WHERE w.is_point
ORDER BY user_id, ts
"""


def compute_user_activity(
    events: pa.Table,
    photos: pa.Table,
    users: pa.Table,
    range_start: datetime,
    range_end: datetime,
    tiles: pa.Table | None = None,
    before: pa.Table | None = None,
) -> pa.Table:
    """Feature rows with ts in [range_start, range_end). From every event since range_start - 30
    days; or, for one day (`user_activity_of_day`), from the raw events of its edge days, the
    `tiles` of the days between, and `before` (user_id, day, last_ts: the user's last event the
    day before each edge day)."""
    with duck.connect() as con:
        con.register("events", events)
        con.register("photos", photos)
        con.register("users", users)
        con.register("tiles", tiles if tiles is not None else TILE_SCHEMA.empty_table())
        if before is None:
            con.execute(BEFORE_SQL.format(events="events"))
        else:
            con.register("before", before)
        con.execute(SESSIONS_SQL)
        con.execute(ACTS_SQL)
        con.execute(
            POINTS_SQL, {"range_start": range_start.replace(tzinfo=None), "range_end": range_end.replace(tzinfo=None)}
        )
        con.execute(FEATURES_SQL)
        return conform_to(con.sql("SELECT * FROM features").to_arrow_table(), USER_ACTIVITY_SCHEMA)


class UserRange(NamedTuple):
    """User ids in [lo, hi)."""

    lo: int
    hi: int

    @property
    def where(self) -> pc.Expression:
        """The range as a filter a Parquet read pushes down (files sorted by user_id skip the rest)."""
        return (pc.field("user_id") >= self.lo) & (pc.field("user_id") < self.hi)

    def rows(self, table: pa.Table) -> pa.Table:
        return table.filter(self.where)


class DayEvents(NamedTuple):
    """A day's events (`EVENT_COLUMNS`) to be read once, a batch at a time; `rows` is known first."""

    rows: int
    batches: Iterable[pa.RecordBatch]

    @classmethod
    def of(cls, table: pa.Table) -> DayEvents:
        return cls(table.num_rows, table.select(EVENT_COLUMNS).to_batches(BATCH_ROWS))


def user_ranges(
    user_ids: pa.ChunkedArray | pa.Array, events: int, per_range: int = EVENTS_PER_USER_RANGE
) -> list[UserRange]:
    """Contiguous ranges of `user_ids` (the users table's), as many as `events` edge events make
    at `per_range` each, with equal numbers of users: every id is in exactly one."""
    n = -(-events // per_range)
    if n <= 1 or len(user_ids) == 0:
        return [UserRange(-(2**63), 2**63 - 1)]
    cuts = np.unique(np.quantile(np.asarray(user_ids), np.linspace(0, 1, n + 1)[1:-1]).astype(np.int64))
    bounds = [-(2**63), *cuts.tolist(), 2**63 - 1]
    return [UserRange(lo, hi) for lo, hi in zip(bounds, bounds[1:])]


class _Authors:
    """Each photo's author, looked up by photo id (a sorted copy of the ids: no hash per batch)."""

    def __init__(self, photos: pa.Table) -> None:
        ids = photos["photo_id"].to_numpy()
        order = np.argsort(ids, kind="stable")
        self.ids, self.users = ids[order], photos["user_id"].to_numpy()[order]

    def of(self, photo_ids: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """(author, known): the author of each photo id; `known` is False for a NULL or unknown id."""
        wanted = pc.fill_null(photo_ids, -1).to_numpy()
        if not len(self.ids):
            return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
        at = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        known = (self.ids[at] == wanted) & pc.is_valid(photo_ids).to_numpy(zero_copy_only=False)
        return self.users[at], known


def _split_by_range(
    days: Iterable[DayEvents], authors: _Authors, ranges: list[UserRange], directory: Path
) -> Iterator[pa.Table]:
    """Each range's events: its users' own and the likes on their photos (a like goes to the
    actor's range and to the author's). Written a batch at a time to a file per range, then
    read back a range at a time, memory-mapped."""
    cuts = np.array([r.lo for r in ranges[1:]], np.int64)
    paths = [directory / f"range-{i}.arrow" for i in range(len(ranges))]
    writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
    schema = None
    try:
        for day in days:
            for batch in day.batches:
                events = pa.Table.from_batches([batch]).select(EVENT_COLUMNS)
                schema = schema or events.schema
                own = np.searchsorted(cuts, events["user_id"].to_numpy(), "right")
                author, known = authors.of(events["photo_id"])
                author_range = np.searchsorted(cuts, author, "right")
                liked = known & pc.equal(events["event_type"], "like").to_numpy(zero_copy_only=False)
                also = np.flatnonzero(liked & (author_range != own))
                dest = np.concatenate([own, author_range[also]])
                order = np.argsort(dest, kind="stable")
                routed = events.take(np.concatenate([np.arange(events.num_rows), also])[order])
                counts = np.bincount(dest, minlength=len(ranges))
                for i, start in enumerate(np.cumsum(counts) - counts):
                    if counts[i]:
                        if i not in writers:
                            writers[i] = pa.ipc.new_file(paths[i], schema)
                        writers[i].write_table(routed.slice(start, counts[i]).cast(schema))
    finally:
        for writer in writers.values():
            writer.close()
    for i in range(len(ranges)):
        if i in writers:
            with pa.memory_map(str(paths[i])) as source:
                yield pa.ipc.open_file(source).read_all()
            paths[i].unlink()
        else:
            yield (schema or _EVENTS_ARROW).empty_table()


_EVENTS_ARROW = pa.schema([EVENTS_SCHEMA.field(c) for c in EVENT_COLUMNS])  # the staged events' columns read


def _by_range(
    days: list[DayEvents], photos: pa.Table, users: pa.Table, per_range: int
) -> Iterator[tuple[UserRange, pa.Table]]:
    """Each user range with its events (see `_split_by_range`); one range without a split."""
    ranges = user_ranges(users["user_id"], sum(d.rows for d in days), per_range)
    if len(ranges) == 1:
        batches = [b for d in days for b in d.batches]
        yield (
            ranges[0],
            (pa.Table.from_batches(batches).select(EVENT_COLUMNS) if batches else _EVENTS_ARROW.empty_table()),
        )
        return
    with tempfile.TemporaryDirectory(prefix="user-ranges-") as tmp:
        yield from zip(ranges, _split_by_range(days, _Authors(photos), ranges, Path(tmp)))


def before_from_events(day: DayEvents, next_day: date) -> pa.Table:
    """(user_id, day, last_ts): each user's last event of the day before `next_day`, from its
    events read a batch at a time (what `before` holds when there is no tile of that day)."""
    parts = [
        pa.Table.from_batches([b]).select(["user_id", "ts"]).group_by("user_id").aggregate([("ts", "max")])
        for b in day.batches
    ]
    if not parts:
        return before_from_tile(TILE_SCHEMA.empty_table(), next_day)
    last = pa.concat_tables(parts).group_by("user_id").aggregate([("ts_max", "max")])
    return before_from_tile(pa.table({"user_id": last["user_id"], "last_ts": last["ts_max_max"].cast(UTC)}), next_day)


def compute_activity_tile(
    events: DayEvents,
    before: pa.Table,
    photos: pa.Table,
    users: pa.Table,
    day: date,
    per_range: int = EVENTS_PER_USER_RANGE,
) -> pa.Table:
    """The tile of `day` from its events and `before` (each user's last event the day before, for
    session starts: `before_from_events`, or the day before's tile via `before_from_tile`), a range of users
    at a time."""
    tiles = []
    for r, events_of_range in _by_range([events], photos, users, per_range):
        with duck.connect() as con:
            con.register("events", events_of_range)
            con.register("photos", r.rows(photos))
            con.register("before", r.rows(before))
            con.execute(SESSIONS_SQL)
            tiles.append(r.rows(conform_to(con.sql(TILE_SQL, params={"day": day}).to_arrow_table(), TILE_SCHEMA)))
    return pa.concat_tables(tiles)


def user_activity_of_day(
    day: date,
    events_of: Callable[[date], DayEvents],
    tile_of: Callable[[date, UserRange], pa.Table],
    photos: pa.Table,
    users: pa.Table,
    per_range: int = EVENTS_PER_USER_RANGE,
) -> Iterator[pa.Table]:
    """The rows of one day, from the raw events of its edge days and the tiles of the days
    between: what it reads does not grow with the 30-day window. `events_of(d)` gives a day's
    events, `tile_of(d, users)` the rows of its tile in a range of users; the same rows as from
    every raw event. Yielded a range of users at a time (`per_range` edge events each), in
    (user_id, ts) order."""
    start = datetime.combine(day, time(), tzinfo=UTC_TZ)
    edges = [events_of(day - timedelta(days=k)) for k in EDGE_DAYS]
    for r, events in _by_range(edges, photos, users, per_range):
        # Days back whose tiles the range reads: the 6 between the edges, and the day before each edge
        # day (for session starts); the day before the day itself is both, and read once.
        read = {k: tile_of(day - timedelta(days=k), r) for k in {*TILE_DAYS, *(k + 1 for k in EDGE_DAYS)}}
        tiles = pa.concat_tables([read[k] for k in TILE_DAYS])
        before = pa.concat_tables([before_from_tile(read[k + 1], day - timedelta(days=k)) for k in EDGE_DAYS])
        rows = compute_user_activity(
            events, *map(r.rows, (photos, users)), start, start + timedelta(days=1), tiles, before
        )
        yield r.rows(rows)


def before_from_tile(tile: pa.Table, day: date) -> pa.Table:
    """(user_id, day, last_ts): each user's last event before `day`, from the tile of the day before."""
    kept = tile.filter(pc.is_valid(tile["last_ts"]))
    start = datetime.combine(day, time())
    return pa.table(
        {
            "user_id": kept["user_id"],
            "day": pa.array([start] * kept.num_rows, pa.timestamp("us")),
            "last_ts": kept["last_ts"],
        }
    )

"""`user_activity`: each user's activity features as a piecewise-constant function of time.

A row (user_id, ts, features) holds the exact feature values from `ts` until the user's next
row. Rows are emitted at every instant a value can change — the user's own events, likes on
their photos, session starts, the moment an event leaves a 7- or 30-day window (1 µs after it
turns 7 or 30 days old), and the midnight after a day with logins — so an as-of join at any
time t returns the values at t exactly, never values from after t.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC as UTC_TZ
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.lib import duck
from platform_assets.lib.staging.arrow_utils import conform_to, described_schema

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
# Raw events computed at once. A user's rows depend only on the user's own events, the likes
# on the user's photos and the user's tiles, so a day is computed a range of user ids at a
# time: DuckDB's sorts and windows hold one range, not 20 M events (two 10 M-event days).
EVENTS_PER_USER_RANGE = 2_000_000
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

    def holds(self, ids: pa.ChunkedArray) -> pa.ChunkedArray:
        return pc.and_(pc.greater_equal(ids, self.lo), pc.less(ids, self.hi))

    def rows(self, table: pa.Table) -> pa.Table:
        return table.filter(self.holds(table["user_id"]))

    def events(self, events: pa.Table, author: pa.ChunkedArray) -> pa.Table:
        """The users' own events and the likes on their photos (`author`: each event's photo's)."""
        liked = pc.and_kleene(pc.equal(events["event_type"], "like"), self.holds(author))
        return events.filter(pc.or_kleene(self.holds(events["user_id"]), liked))


def _authors(events: pa.Table, photos: pa.Table) -> pa.ChunkedArray:
    return pc.take(photos["user_id"], pc.index_in(events["photo_id"], photos["photo_id"]))


def user_ranges(events: pa.Table, per_range: int = EVENTS_PER_USER_RANGE) -> list[UserRange]:
    """Contiguous user id ranges of about `per_range` of `events` each, covering every id."""
    n = -(-events.num_rows // per_range)
    if n <= 1:
        return [UserRange(-(2**63), 2**63 - 1)]
    cuts = np.unique(np.quantile(events["user_id"].to_numpy(), np.linspace(0, 1, n + 1)[1:-1]).astype(np.int64))
    bounds = [-(2**63), *cuts.tolist(), 2**63 - 1]
    return [UserRange(lo, hi) for lo, hi in zip(bounds, bounds[1:])]


def compute_activity_tile(
    events: pa.Table, day_before: pa.Table, photos: pa.Table, day: date, per_range: int = EVENTS_PER_USER_RANGE
) -> pa.Table:
    """The tile of `day` from its events and the events of the day before (for session starts),
    a range of users at a time."""
    ranges = user_ranges(events, per_range)
    if len(ranges) > 1:
        author = _authors(events, photos)
        return pa.concat_tables(
            [
                r.rows(compute_activity_tile(r.events(events, author), r.rows(day_before), r.rows(photos), day))
                for r in ranges
            ]
        )
    with duck.connect() as con:
        con.register("events", events)
        con.register("photos", photos)
        con.register("day_before", day_before)
        con.execute(BEFORE_SQL.format(events="day_before"))
        con.execute(SESSIONS_SQL)
        return conform_to(con.sql(TILE_SQL, params={"day": day}).to_arrow_table(), TILE_SCHEMA)


def user_activity_of_day(
    day: date,
    events_of: Callable[[date], pa.Table],
    tile_of: Callable[[date], pa.Table],
    photos: pa.Table,
    users: pa.Table,
    per_range: int = EVENTS_PER_USER_RANGE,
) -> pa.Table:
    """The rows of one day, from the raw events of its edge days and the tiles of the days
    between: what it reads does not grow with the 30-day window. `events_of(d)` gives a day's
    events (`EVENT_COLUMNS`), `tile_of(d)` its tile; the same rows as from every raw event.
    Computed a range of users at a time (`per_range` edge events each)."""
    edges = pa.concat_tables([events_of(day - timedelta(days=k)).select(EVENT_COLUMNS) for k in EDGE_DAYS])
    tiles = pa.concat_tables([tile_of(day - timedelta(days=k)) for k in TILE_DAYS])
    before = pa.concat_tables(
        [_last_event(tile_of(day - timedelta(days=k + 1)), day - timedelta(days=k)) for k in EDGE_DAYS]
    )
    start = datetime.combine(day, time(), tzinfo=UTC_TZ)
    end = start + timedelta(days=1)
    ranges = user_ranges(edges, per_range)
    if len(ranges) == 1:
        return compute_user_activity(edges, photos, users, start, end, tiles, before)
    author = _authors(edges, photos)
    return pa.concat_tables(
        [
            r.rows(compute_user_activity(r.events(edges, author), *map(r.rows, (photos, users)), start, end,
                                         *map(r.rows, (tiles, before))))
            for r in ranges
        ]
    )  # fmt: skip


def _last_event(tile: pa.Table, day: date) -> pa.Table:
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

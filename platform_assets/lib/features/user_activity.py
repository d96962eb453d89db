"""`user_activity`: each user's activity features as a piecewise-constant function of time.

A row (user_id, ts, features) holds the exact feature values from `ts` until the user's next
row. Rows are emitted at every instant a value can change — the user's own events, likes on
their photos, session starts, the moment an event leaves a 7- or 30-day window (1 µs after it
turns 7 or 30 days old), and the midnight after a day with logins — so an as-of join at any
time t returns the values at t exactly, never values from after t.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

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

ACTS_SQL = f"""
CREATE TEMP TABLE acts AS  -- activities that move a feature, attributed to the user whose feature moves
SELECT user_id, ts::TIMESTAMP AS ts, event_type = 'login' AS login, event_type = 'like' AS like_given,
       false AS like_received, false AS post, false AS session
FROM events WHERE event_type IN ('login', 'like')
UNION ALL  -- posts from the app database, the source of truth for photos (a `post` log event can be lost or late)
SELECT user_id, posted_at::TIMESTAMP, false, false, false, true, false FROM photos
UNION ALL
SELECT p.user_id, e.ts::TIMESTAMP, false, false, true, false, false
FROM events AS e JOIN photos AS p USING (photo_id) WHERE e.event_type = 'like'
UNION ALL
SELECT user_id, ts, false, false, false, false, true
FROM (SELECT user_id, ts::TIMESTAMP AS ts, lag(ts::TIMESTAMP) OVER (PARTITION BY user_id ORDER BY ts) AS prev FROM events)
WHERE prev IS NULL OR ts - prev > INTERVAL {SESSION_GAP}
"""

POINTS_SQL = """
CREATE TEMP TABLE points AS  -- every instant in [range_start, range_end) where a value can change
SELECT DISTINCT user_id, ts FROM (
    SELECT user_id, ts FROM acts
    UNION ALL SELECT user_id, ts + INTERVAL 7 DAYS + INTERVAL 1 MICROSECOND FROM acts WHERE like_given OR like_received OR session
    UNION ALL SELECT user_id, ts + INTERVAL 30 DAYS + INTERVAL 1 MICROSECOND FROM acts WHERE post
    UNION ALL SELECT user_id, date_trunc('day', ts) + INTERVAL 1 DAY FROM acts WHERE login
) WHERE ts >= $range_start AND ts < $range_end
"""

FEATURES_SQL = """
CREATE TEMP TABLE features AS
WITH timeline AS (
    SELECT user_id, ts, login::INT AS login, like_given::INT AS like_given, like_received::INT AS like_received,
           post::INT AS post, session::INT AS session, false AS is_point FROM acts
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
    events: pa.Table, photos: pa.Table, users: pa.Table, range_start: datetime, range_end: datetime
) -> pa.Table:
    """Feature rows with ts in [range_start, range_end) from events since range_start - 30 days."""
    with duck.connect() as con:
        for name, table in (("events", events), ("photos", photos), ("users", users)):
            con.register(name, table)
        con.execute(ACTS_SQL)
        con.execute(
            POINTS_SQL, {"range_start": range_start.replace(tzinfo=None), "range_end": range_end.replace(tzinfo=None)}
        )
        con.execute(FEATURES_SQL)
        return conform_to(con.sql("SELECT * FROM features").to_arrow_table(), USER_ACTIVITY_SCHEMA)

"""`training_set`: one row per labelled photo, features as of the moment it was posted.

The author's activity comes from an ASOF join: the latest `user_activity` row with
ts <= posted_at within 31 days, never one after. `features_as_of` keeps that row's ts so a
check can prove it. A day joins against its own activity rows and the day before's
`latest_activity` (each user's latest row before the day), not 31 days of rows.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from platform_assets.lib import duck
from platform_assets.lib.features.labels import LABELS_SCHEMA
from platform_assets.lib.features.photo_features import PHOTO_FEATURES_SCHEMA
from platform_assets.lib.features.user_activity import USER_ACTIVITY_SCHEMA
from platform_assets.lib.staging.arrow_utils import conform_to, described_schema

ACTIVITY_FEATURES = [f.name for f in USER_ACTIVITY_SCHEMA if f.name not in ("user_id", "ts", "days_since_signup")]
LABEL_COLUMNS = ["views", "likes", "comments", "shares", "popularity_score"]

TRAINING_SET_SCHEMA = described_schema(
    *[(f.name, f.type, f.metadata[b"description"].decode()) for f in PHOTO_FEATURES_SCHEMA],
    *[
        (
            f"author_{f.name}",
            f.type,
            f"The author's `{f.name}` as of posted_at (the user is the author, ts is "
            f"posted_at): {f.metadata[b'description'].decode()}",
        )
        for f in USER_ACTIVITY_SCHEMA
        if f.name in ACTIVITY_FEATURES
    ],
    (
        "features_as_of",
        pa.timestamp("us", tz="UTC"),
        "ts of the joined user_activity row (NULL: no activity in 31 days); always <= posted_at.",
    ),
    *[(f.name, f.type, f.metadata[b"description"].decode()) for f in LABELS_SCHEMA if f.name in LABEL_COLUMNS],
)

# The ASOF join sorts both sides, so it only gets the activity of this range's authors.
TRAINING_SET_SQL = f"""
WITH entities AS (
    SELECT pf.*, {", ".join(f"l.{c}" for c in LABEL_COLUMNS)}
    FROM photo_features AS pf JOIN labels AS l USING (photo_id)
    WHERE l.label_ready AND pf.posted_at >= $range_start AND pf.posted_at < $range_end
), authors_activity AS (
    SELECT * FROM user_activity WHERE user_id IN (SELECT user_id FROM entities)
)
SELECT e.* EXCLUDE ({", ".join(LABEL_COLUMNS)}),
       {", ".join(f"coalesce(ua.{c}, 0) AS author_{c}" for c in ACTIVITY_FEATURES)},
       ua.ts AS features_as_of,
       {", ".join(f"e.{c}" for c in LABEL_COLUMNS)}
FROM entities AS e
ASOF LEFT JOIN authors_activity AS ua ON e.user_id = ua.user_id AND e.posted_at >= ua.ts
ORDER BY e.posted_at, e.photo_id
"""


def compute_training_set(
    photo_features: pa.Table, labels: pa.Table, user_activity: pa.Table, range_start: datetime, range_end: datetime
) -> pa.Table:
    """`user_activity` must hold, per author, the latest row of the 31 days before range_start
    (the day before's `latest_activity`) and every row of the range: a user with no row in that
    span has had no activity for over 30 days, so every window feature is exactly 0."""
    with duck.connect() as con:
        for name, table in (("photo_features", photo_features), ("labels", labels), ("user_activity", user_activity)):
            con.register(name, table)
        table = con.sql(TRAINING_SET_SQL, params={"range_start": range_start, "range_end": range_end}).to_arrow_table()
        return conform_to(table, TRAINING_SET_SCHEMA)


POINT_IN_TIME_SQL = """
SELECT count(*) FILTER (features_as_of > posted_at) AS violations, count(*) AS rows FROM training_set
"""


def point_in_time_violations(training_set: pa.Table) -> int:
    with duck.connect() as con:
        con.register("training_set", training_set)
        return int(con.sql(POINT_IN_TIME_SQL).fetchall()[0][0])

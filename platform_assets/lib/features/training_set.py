"""`training_set`: one row per labelled photo, features as of the moment it was posted.

The author's activity comes from an ASOF join: the latest `user_activity` row with
ts <= posted_at within 31 days, never one after. `features_as_of` keeps that row's ts; the
`point_in_time_correct` check recomputes a sample of rows' values from the staged events
(`point_in_time_reference`). A day joins against its own activity rows and the day before's
`latest_activity` (each user's latest row before the day), not 31 days of rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

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

# The entities: this range's labelled photos, with their labels.
ENTITIES_SQL = f"""
CREATE TEMP TABLE entities AS
SELECT pf.*, {", ".join(f"l.{c}" for c in LABEL_COLUMNS)}
FROM photo_features AS pf JOIN labels AS l USING (photo_id)
WHERE l.label_ready AND pf.posted_at >= $range_start AND pf.posted_at < $range_end
"""
BEST_SQL = "CREATE TEMP TABLE best AS SELECT NULL::BIGINT AS photo_id, * EXCLUDE (user_id) FROM activity_schema"
# Each photo's latest activity row of one chunk (ASOF: ts <= posted_at, never after), then the
# latest over the chunks so far: the authors' rows are never all held at once. The ASOF join
# sorts both sides, so it gets only the activity of this range's authors.
CHUNK_SQL = """
INSERT INTO best BY NAME
SELECT e.photo_id, ua.* EXCLUDE (user_id)
FROM entities AS e
ASOF JOIN (SELECT * FROM chunk WHERE user_id IN (SELECT user_id FROM entities)) AS ua
  ON e.user_id = ua.user_id AND e.posted_at >= ua.ts
"""
LATEST_SQL = """
CREATE OR REPLACE TEMP TABLE best AS
SELECT * FROM best QUALIFY row_number() OVER (PARTITION BY photo_id ORDER BY ts DESC) = 1
"""
TRAINING_SET_SQL = f"""
SELECT e.* EXCLUDE ({", ".join(LABEL_COLUMNS)}),
       {", ".join(f"coalesce(ua.{c}, 0) AS author_{c}" for c in ACTIVITY_FEATURES)},
       ua.ts AS features_as_of,
       {", ".join(f"e.{c}" for c in LABEL_COLUMNS)}
FROM entities AS e LEFT JOIN best AS ua USING (photo_id)
ORDER BY e.posted_at, e.photo_id
"""


def compute_training_set(
    photo_features: pa.Table,
    labels: pa.Table,
    user_activity: pa.Table | Iterable[pa.Table | pa.RecordBatch],
    range_start: datetime,
    range_end: datetime,
) -> pa.Table:
    """`user_activity` (a table, or its rows in chunks of any order) must hold, per author, the
    latest row of the 31 days before range_start (the day before's `latest_activity`) and every
    row of the range: a user with no row in that span has had no activity for over 30 days, so
    every window feature is exactly 0. Memory holds the photos and one chunk of activity."""
    chunks = [user_activity] if isinstance(user_activity, pa.Table) else user_activity
    span = {"range_start": range_start, "range_end": range_end}
    with duck.connect() as con:
        for name, table in (("photo_features", photo_features), ("labels", labels)):
            con.register(name, table)
        con.register("activity_schema", USER_ACTIVITY_SCHEMA.empty_table())
        con.execute(ENTITIES_SQL, span)
        con.execute(BEST_SQL)
        for chunk in chunks:
            con.register("chunk", chunk)
            con.execute(CHUNK_SQL)
            con.execute(LATEST_SQL)
            con.unregister("chunk")
        return conform_to(con.sql(TRAINING_SET_SQL).to_arrow_table(), TRAINING_SET_SCHEMA)


def point_in_time_violations(training_set: pa.Table) -> int:
    """Rows whose joined activity row is after posted_at: the as-of join's own predicate restated,
    so zero whatever `user_activity`'s values hold (`point_in_time_reference` checks those)."""
    return pc.sum(pc.greater(training_set["features_as_of"], training_set["posted_at"])).as_py() or 0

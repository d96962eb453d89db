"""`popularity_labels`: how popular each photo became in the 24 hours after it was posted."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from platform_assets.lib import duck
from platform_assets.lib.staging.arrow_utils import conform_to, described_schema

LABEL_HOURS = 24
LABELS_SCHEMA = described_schema(
    ("photo_id", pa.int64(), "The photo."),
    (
        "posted_at",
        pa.timestamp("us", tz="UTC"),
        "When it was posted; the label window is (posted_at, posted_at + 24 h].",
    ),
    ("views", pa.int64(), "Views in the label window."),
    ("likes", pa.int64(), "Likes in the label window."),
    ("comments", pa.int64(), "Comments in the label window."),
    ("shares", pa.int64(), "Shares in the label window."),
    ("popularity_score", pa.float64(), "ln(1 + views + 3 likes + 5 comments + 8 shares)."),
    ("label_ready", pa.bool_(), "True once events past posted_at + 24 h have arrived, so the window is closed."),
)

LABELS_SQL = f"""
SELECT p.photo_id, p.posted_at,
       count(*) FILTER (e.event_type = 'view')    AS views,
       count(*) FILTER (e.event_type = 'like')    AS likes,
       count(*) FILTER (e.event_type = 'comment') AS comments,
       count(*) FILTER (e.event_type = 'share')   AS shares,
       ln(1 + views + 3 * likes + 5 * comments + 8 * shares) AS popularity_score,
       p.posted_at + INTERVAL {LABEL_HOURS} HOURS <= $watermark::TIMESTAMPTZ AS label_ready
FROM photos AS p
LEFT JOIN events AS e
       ON e.photo_id = p.photo_id AND e.ts > p.posted_at AND e.ts <= p.posted_at + INTERVAL {LABEL_HOURS} HOURS
      AND e.event_type IN ('view', 'like', 'comment', 'share')
WHERE p.posted_at >= $range_start AND p.posted_at < $range_end
GROUP BY p.photo_id, p.posted_at
ORDER BY p.photo_id
"""


def compute_labels(
    photos: pa.Table,
    events: pa.Table,
    range_start: datetime,
    range_end: datetime,
    watermark: datetime | None = None,
) -> pa.Table:
    """Labels of photos posted in [range_start, range_end); `events` must cover range_end + 24 h
    as far as it has arrived. A label window is closed once `watermark` (by default the latest
    of `events`; a run over many days passes the latest event of all of them) is past it."""
    with duck.connect() as con:
        con.register("photos", photos)
        con.register("events", events)
        if watermark is None:
            ((watermark,),) = con.sql("SELECT max(ts) FROM events").fetchall()
        params = {"range_start": range_start, "range_end": range_end, "watermark": watermark}
        return conform_to(con.sql(LABELS_SQL, params=params).to_arrow_table(), LABELS_SCHEMA)

"""`popularity_labels`: how popular each photo became in the 24 hours after it was posted."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

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

# A batch of events' hits in the label windows of the range's photos, counted per photo; the
# counts of every batch are summed at the end, so the events are never all in memory.
HITS_SQL = f"""
INSERT INTO hits
SELECT e.photo_id,
       count(*) FILTER (e.event_type = 'view')    AS views,
       count(*) FILTER (e.event_type = 'like')    AS likes,
       count(*) FILTER (e.event_type = 'comment') AS comments,
       count(*) FILTER (e.event_type = 'share')   AS shares
FROM batch AS e
JOIN photos AS p
  ON e.photo_id = p.photo_id AND e.ts > p.posted_at AND e.ts <= p.posted_at + INTERVAL {LABEL_HOURS} HOURS
WHERE e.event_type IN ('view', 'like', 'comment', 'share')
GROUP BY e.photo_id
"""

LABELS_SQL = f"""
SELECT p.photo_id, p.posted_at, coalesce(h.views, 0) AS views, coalesce(h.likes, 0) AS likes,
       coalesce(h.comments, 0) AS comments, coalesce(h.shares, 0) AS shares,
       -- h's columns, not the aliases above (DuckDB binds a name to the table's column first):
       -- a photo nobody touched in its window scores ln(1) = 0, never null
       ln(1 + coalesce(h.views, 0) + 3 * coalesce(h.likes, 0) + 5 * coalesce(h.comments, 0)
          + 8 * coalesce(h.shares, 0)) AS popularity_score,
       p.posted_at + INTERVAL {LABEL_HOURS} HOURS <= $watermark::TIMESTAMPTZ AS label_ready
FROM photos AS p
LEFT JOIN (SELECT photo_id, sum(views) AS views, sum(likes) AS likes, sum(comments) AS comments, sum(shares) AS shares
           FROM hits GROUP BY photo_id) AS h USING (photo_id)
ORDER BY p.photo_id
"""


def compute_labels(
    photos: pa.Table,
    events: Iterable[pa.RecordBatch],
    range_start: datetime,
    range_end: datetime,
    watermark: datetime | None = None,
) -> pa.Table:
    """Labels of photos posted in [range_start, range_end); `events` (read once, a batch at a
    time) must cover range_end + 24 h as far as it has arrived. A label window is closed once
    `watermark` (by default the latest of `events`; a run over many days passes the latest
    event of all of them) is past it."""
    posted = pc.field("posted_at")
    photos = photos.select(["photo_id", "posted_at"]).filter((posted >= range_start) & (posted < range_end))
    latest = None
    with duck.connect() as con:
        con.register("photos", photos)
        con.execute(
            "CREATE TEMP TABLE hits (photo_id BIGINT, views BIGINT, likes BIGINT, comments BIGINT, shares BIGINT)"
        )
        for batch in events:
            con.register("batch", batch)
            con.execute(HITS_SQL)
            if watermark is None:
                latest = max(filter(None, [latest, pc.max(batch["ts"]).as_py()]), default=None)
        con.unregister("batch")
        params = {"watermark": watermark if watermark is not None else latest}
        return conform_to(con.sql(LABELS_SQL, params=params).to_arrow_table(), LABELS_SCHEMA)

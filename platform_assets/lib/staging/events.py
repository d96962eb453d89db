"""The `events` transform: raw log lines to typed, deduplicated events plus a quarantine.

One DuckDB query parses each line once, gives every rejected line exactly one reason, and
keeps every valid event exactly once (first delivery wins: lowest source file, then line).
Fields outside the known schema (schema drift) do not reject a line: the event is kept and
its whole original record is preserved in `extra_json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import duckdb
import pyarrow as pa

from platform_assets.lib.staging.arrow_utils import conform_to, described_schema

UTC = pa.timestamp("us", tz="UTC")
EVENTS_SCHEMA = described_schema(
    ("event_id", pa.string(), "Producer-assigned id; unique within the table (first delivery wins)."),
    ("ts", UTC, "When the event happened, normalised to UTC."),
    ("event_type", pa.string(), "login, view, like, comment, share or post."),
    ("user_id", pa.int64(), "The acting user."),
    ("photo_id", pa.int64(), "The photo acted on; NULL for logins."),
    ("client", pa.string(), "ios, android or web."),
    ("source_file", pa.string(), "Lake key of the log file the event was read from."),
    ("extra_json", pa.string(), "The original record when it carried fields outside this schema (drift)."),
)
QUARANTINE_SCHEMA = described_schema(
    ("partition_date", pa.date32(), "The day partition the line was delivered for."),
    ("source_file", pa.string(), "Lake key of the log file."),
    ("line_number", pa.int64(), "1-based line number in the decompressed file."),
    ("reason", pa.string(), "Why the line was rejected: '<kind>: <detail>'."),
    ("raw", pa.string(), "The line as delivered (first 64 KiB)."),
    ("raw_truncated", pa.bool_(), "True when `raw` was cut at 64 KiB."),
)

KNOWN_FIELDS = ("event_id", "ts", "event_type", "user_id", "photo_id", "client")
EVENT_TYPES = ("login", "view", "like", "comment", "share", "post")

EVENTS_SQL = """
CREATE TEMP TABLE classified AS
WITH parsed AS (
    SELECT source_file::VARCHAR AS source_file, line_number, rtrim(raw, chr(10) || chr(13)) AS raw, read_error,
           CASE WHEN read_error IS NULL THEN TRY_CAST(raw AS JSON) END AS j
    FROM lines
), fields AS (
    SELECT *,
           json_type(j) AS root_type,
           json_extract(j, ['$.event_id', '$.ts', '$.event_type', '$.user_id', '$.photo_id', '$.client']) AS v
    FROM parsed
), typed AS (
    SELECT *,
           [coalesce(json_type(x), 'NULL') FOR x IN v] AS t,
           json_extract_string(v[1], '$') AS event_id,
           TRY_CAST(json_extract_string(v[2], '$') AS TIMESTAMPTZ) AS ts,
           json_extract_string(v[3], '$') AS event_type,
           TRY_CAST(v[4] AS BIGINT) AS user_id,
           TRY_CAST(v[5] AS BIGINT) AS photo_id,
           json_extract_string(v[6], '$') AS client
    FROM fields
)
SELECT source_file, line_number, raw, event_id, ts, event_type, user_id, photo_id, client,
       CASE
           WHEN read_error IS NOT NULL THEN read_error
           WHEN j IS NULL THEN 'malformed_json'
           WHEN root_type <> 'OBJECT' THEN 'not_an_object'
           WHEN t[1] = 'NULL' THEN 'missing_field: event_id'
           WHEN t[2] = 'NULL' THEN 'missing_field: ts'
           WHEN t[3] = 'NULL' THEN 'missing_field: event_type'
           WHEN t[4] = 'NULL' THEN 'missing_field: user_id'
           WHEN t[6] = 'NULL' THEN 'missing_field: client'
           WHEN t[1] <> 'VARCHAR' OR event_id = '' THEN 'wrong_type: event_id must be a non-empty string, got ' || t[1]
           WHEN t[2] <> 'VARCHAR' THEN 'wrong_type: ts must be an ISO-8601 string, got ' || t[2]
           WHEN t[3] <> 'VARCHAR' THEN 'wrong_type: event_type must be a string, got ' || t[3]
           WHEN t[4] NOT IN ('UBIGINT', 'BIGINT') OR user_id IS NULL THEN 'wrong_type: user_id must be an integer, got ' || t[4]
           WHEN t[5] NOT IN ('NULL', 'UBIGINT', 'BIGINT') OR (t[5] <> 'NULL' AND photo_id IS NULL) THEN 'wrong_type: photo_id must be an integer, got ' || t[5]
           WHEN t[6] <> 'VARCHAR' THEN 'wrong_type: client must be a string, got ' || t[6]
           WHEN ts IS NULL THEN 'bad_timestamp: ' || left(json_extract_string(v[2], '$'), 64)
           WHEN event_type NOT IN $event_types THEN 'unknown_event_type: ' || left(event_type, 64)
           WHEN event_type <> 'login' AND photo_id IS NULL THEN 'missing_field: photo_id (required for ' || event_type || ')'
           WHEN ts < $day_start OR ts >= $day_end THEN 'timestamp_outside_partition: ' || strftime(ts::TIMESTAMP, '%Y-%m-%dT%H:%M:%SZ')
       END AS reason,
       CASE WHEN j IS NOT NULL AND root_type = 'OBJECT'
            THEN list_filter(json_keys(j), lambda k: k NOT IN $known_fields) END AS unexpected_fields
FROM typed
"""

DEDUPE_SQL = """
CREATE TEMP TABLE kept AS
SELECT * FROM classified
WHERE reason IS NULL
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY source_file, line_number) = 1
"""

SELECT_EVENTS_SQL = """
SELECT event_id, ts, event_type, user_id, photo_id, client, source_file,
       CASE WHEN len(unexpected_fields) > 0 THEN raw END AS extra_json
FROM kept
ORDER BY ts, event_id
"""

SELECT_QUARANTINE_SQL = """
SELECT $day::DATE AS partition_date, source_file, line_number, reason,
       left(raw, 65536) AS raw, length(raw) > 65536 AS raw_truncated
FROM classified
WHERE reason IS NOT NULL
ORDER BY source_file, line_number
"""

STATS_SQL = """
SELECT count(*) AS lines,
       count(*) FILTER (reason IS NULL) AS valid_lines,
       count(*) FILTER (reason IS NOT NULL) AS quarantined,
       count(*) FILTER (reason IS NULL) - count(DISTINCT event_id) FILTER (reason IS NULL) AS duplicates_removed
FROM classified
"""

REASONS_SQL = """
SELECT split_part(reason, ':', 1) AS reason, count(*) AS n FROM classified
WHERE reason IS NOT NULL GROUP BY ALL ORDER BY n DESC, reason
"""

DRIFT_SQL = """
SELECT f AS field, count(*) AS n FROM (SELECT unnest(unexpected_fields) AS f FROM kept)
GROUP BY ALL ORDER BY n DESC, field
"""


@dataclass(frozen=True)
class EventsResult:
    events: pa.Table
    quarantine: pa.Table
    stats: dict[str, int]
    reasons: dict[str, int]
    unexpected_fields: dict[str, int]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def transform_events(lines: pa.Table, day: date, threads: int | None = None) -> EventsResult:
    """Parse, type, validate and deduplicate one day's raw log lines."""
    con = duckdb.connect(config={"threads": threads} if threads else {})
    try:
        con.register("lines", lines)
        start, end = day_bounds(day)
        con.execute(
            EVENTS_SQL.replace("$event_types", repr(EVENT_TYPES)).replace("$known_fields", repr(KNOWN_FIELDS)),
            {"day_start": start, "day_end": end},
        )
        con.execute(DEDUPE_SQL)
        events = conform_to(con.sql(SELECT_EVENTS_SQL).to_arrow_table(), EVENTS_SCHEMA)
        quarantine = conform_to(
            con.sql(SELECT_QUARANTINE_SQL, params={"day": day.isoformat()}).to_arrow_table(), QUARANTINE_SCHEMA
        )
        (stats_row,) = con.sql(STATS_SQL).fetchall()
        stats = dict(zip(("lines", "valid_lines", "quarantined", "duplicates_removed"), map(int, stats_row)))
        stats["events"] = events.num_rows
        reasons = dict(con.sql(REASONS_SQL).fetchall())
        drift = dict(con.sql(DRIFT_SQL).fetchall())
        return EventsResult(events, quarantine, stats, reasons, drift)
    finally:
        con.close()

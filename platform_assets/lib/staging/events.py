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
from platform_assets.lib.staging.log_lines import LogLines

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

# Helpers over a field's JSON text (as json_extract returns it): its kind read off the first
# character, and a string's value without a second parse unless it holds escapes.
MACROS_SQL = """
CREATE TEMP MACRO json_kind(x) AS CASE
    WHEN x IS NULL OR x = 'null' THEN 'missing'
    WHEN x[1] = '"' THEN 'string'
    WHEN x[1] = '{' THEN 'object'
    WHEN x[1] = '[' THEN 'array'
    WHEN x IN ('true', 'false') THEN 'boolean'
    WHEN TRY_CAST(x AS BIGINT)::VARCHAR = x THEN 'integer'
    ELSE 'number' END;
CREATE TEMP MACRO json_str(x) AS CASE
    WHEN x[1] = '"' THEN CASE WHEN contains(x, chr(92)) THEN json_extract_string(x, '$') ELSE x[2:-2] END END;
CREATE TEMP MACRO json_int(x) AS CASE WHEN TRY_CAST(x AS BIGINT)::VARCHAR = x THEN TRY_CAST(x AS BIGINT) END;
CREATE TEMP MACRO json_missing(x) AS x IS NULL OR x = 'null';
"""

# One JSON parse per line: json_extract pulls the six known fields as JSON text; everything
# after works on those short strings. Every rejected line gets exactly one reason.
EVENTS_SQL = """
CREATE TEMP TABLE classified AS
WITH fields AS (
    SELECT file_index, line_number, raw, read_error, j IS NOT NULL AS is_json,
           CASE WHEN starts_with(raw, '{') THEN j IS NOT NULL ELSE json_type(j) = 'OBJECT' END AS is_object,
           json_extract(j, ['$.event_id', '$.ts', '$.event_type', '$.user_id', '$.photo_id', '$.client'])::VARCHAR[] AS v
    FROM (SELECT *, CASE WHEN read_error IS NULL THEN TRY_CAST(raw AS JSON) END AS j FROM lines)
), typed AS (
    SELECT *, json_str(v[1]) AS event_id, TRY_CAST(json_str(v[2]) AS TIMESTAMPTZ) AS ts, json_str(v[3]) AS event_type,
           json_int(v[4]) AS user_id, json_int(v[5]) AS photo_id, json_str(v[6]) AS client
    FROM fields
)
SELECT file_index, line_number, event_id, ts, event_type, user_id, photo_id, client,
       CASE
           WHEN read_error IS NOT NULL THEN read_error
           WHEN NOT is_json THEN 'malformed_json'
           WHEN NOT is_object THEN 'not_an_object'
           WHEN json_missing(v[1]) THEN 'missing_field: event_id'
           WHEN json_missing(v[2]) THEN 'missing_field: ts'
           WHEN json_missing(v[3]) THEN 'missing_field: event_type'
           WHEN json_missing(v[4]) THEN 'missing_field: user_id'
           WHEN json_missing(v[6]) THEN 'missing_field: client'
           WHEN event_id IS NULL OR event_id = '' THEN 'wrong_type: event_id must be a non-empty string, got ' || json_kind(v[1])
           WHEN json_str(v[2]) IS NULL THEN 'wrong_type: ts must be an ISO-8601 string, got ' || json_kind(v[2])
           WHEN event_type IS NULL THEN 'wrong_type: event_type must be a string, got ' || json_kind(v[3])
           WHEN user_id IS NULL THEN 'wrong_type: user_id must be an integer, got ' || json_kind(v[4])
           WHEN photo_id IS NULL AND NOT json_missing(v[5])
               THEN 'wrong_type: photo_id must be an integer, got ' || json_kind(v[5])
           WHEN client IS NULL THEN 'wrong_type: client must be a string, got ' || json_kind(v[6])
           WHEN ts IS NULL THEN 'bad_timestamp: ' || left(json_str(v[2]), 64)
           WHEN event_type NOT IN $event_types THEN 'unknown_event_type: ' || left(event_type, 64)
           WHEN event_type <> 'login' AND photo_id IS NULL THEN 'missing_field: photo_id (required for ' || event_type || ')'
           WHEN ts < $day_start OR ts >= $day_end
               THEN 'timestamp_outside_partition: ' || strftime(ts::TIMESTAMP, '%Y-%m-%dT%H:%M:%SZ')
       END AS reason,
       -- A minified record holding only the known fields is exactly this long; the text of a line
       -- of any other length is kept to have its keys listed, so drift is found without listing
       -- every line's keys.
       CASE WHEN is_object AND length(raw) - ends_with(raw, chr(10))::INT <> 1
           + coalesce(length(v[1]) + 12, 0) + coalesce(length(v[2]) + 6, 0) + coalesce(length(v[3]) + 14, 0)
           + coalesce(length(v[4]) + 11, 0) + coalesce(length(v[5]) + 12, 0) + coalesce(length(v[6]) + 10, 0)
       THEN raw END AS maybe_extra
FROM typed
"""

# Duplicates are rare: find the ids seen more than once and keep their first delivery (lowest
# file, then line) instead of ranking every row with a window.
SELECT_EVENTS_SQL = """
WITH repeated AS (
    SELECT event_id, min((file_index, line_number)) AS first_delivery
    FROM classified WHERE reason IS NULL
    GROUP BY event_id HAVING count(*) > 1
)
SELECT event_id, ts, event_type, user_id, photo_id, client, files.source_file,
       CASE WHEN len(list_filter(json_keys(maybe_extra), lambda k: k NOT IN $known_fields)) > 0
            THEN rtrim(maybe_extra, chr(10) || chr(13)) END AS extra_json
FROM classified AS c JOIN files USING (file_index) LEFT JOIN repeated USING (event_id)
WHERE reason IS NULL AND (first_delivery IS NULL OR first_delivery = (c.file_index, c.line_number))
ORDER BY ts, event_id
"""

SELECT_QUARANTINE_SQL = """
SELECT $day::DATE AS partition_date, files.source_file, c.line_number, c.reason,
       left(rtrim(l.raw, chr(10) || chr(13)), 65536) AS raw, length(rtrim(l.raw, chr(10) || chr(13))) > 65536 AS raw_truncated
FROM classified AS c JOIN lines AS l USING (file_index, line_number) JOIN files USING (file_index)
WHERE c.reason IS NOT NULL
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
SELECT f AS field, count(*) AS n
FROM (SELECT unnest(list_filter(json_keys(extra_json), lambda k: k NOT IN $known_fields)) AS f
      FROM events WHERE extra_json IS NOT NULL)
GROUP BY ALL ORDER BY n DESC, field
"""


@dataclass(frozen=True)
class EventsResult:
    events: pa.Table
    quarantine: pa.Table
    stats: dict[str, int]
    reasons: dict[str, int]
    unexpected_fields: dict[str, int]


def _inline(sql: str) -> str:
    """Constants of the schema written into the SQL as literals (they are ours, not data)."""
    return sql.replace("$event_types", repr(EVENT_TYPES)).replace("$known_fields", f"[{', '.join(map(repr, KNOWN_FIELDS))}]")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def transform_events(log_lines: LogLines, day: date, threads: int | None = None) -> EventsResult:
    """Parse, type, validate and deduplicate one day's raw log lines."""
    con = duckdb.connect(config={'threads': threads} if threads else {})
    try:
        con.register("lines", log_lines.lines)
        con.register("files", pa.table({"file_index": pa.array(range(len(log_lines.files)), pa.int32()),
                                        "source_file": pa.array(log_lines.files, pa.string())}))
        start, end = day_bounds(day)
        con.execute(MACROS_SQL)
        con.execute(_inline(EVENTS_SQL), {"day_start": start, "day_end": end})
        events = conform_to(con.sql(_inline(SELECT_EVENTS_SQL)).to_arrow_table(), EVENTS_SCHEMA)
        quarantine = conform_to(
            con.sql(SELECT_QUARANTINE_SQL, params={"day": day.isoformat()}).to_arrow_table(), QUARANTINE_SCHEMA
        )
        (stats_row,) = con.sql(STATS_SQL).fetchall()
        stats = dict(zip(("lines", "valid_lines", "quarantined", "duplicates_removed"), map(int, stats_row)))
        stats["events"] = events.num_rows
        reasons = dict(con.sql(REASONS_SQL).fetchall())
        con.register("events", events)
        drift = dict(con.sql(_inline(DRIFT_SQL)).fetchall())
        return EventsResult(events, quarantine, stats, reasons, drift)
    finally:
        con.close()

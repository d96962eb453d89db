"""The `events` transform: raw log lines to typed, deduplicated events plus a quarantine.

Two DuckDB passes: a fast one types the lines written as the producer writes them, and one
over the few remaining lines gives every rejected line exactly one reason. Together they
keep every valid event exactly once (first delivery wins: the order the files are given in, then line).
Fields outside the known schema (schema drift), or a known field repeated, do not reject a
line: the event is kept (a repeated field's first value counts) and its whole original record
is preserved in `extra_json`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from platform_assets.lib import duck
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
    (
        "extra_json",
        pa.string(),
        "The original record when it carried fields outside this schema (drift) or repeated one.",
    ),
)
QUARANTINE_SCHEMA = described_schema(
    ("partition_date", pa.date32(), "The day partition the line was delivered for."),
    ("source_file", pa.string(), "Lake key of the log file."),
    ("line_number", pa.int64(), "1-based line number in the decompressed file."),
    ("reason", pa.string(), "Why the line was rejected: '<kind>: <detail>'."),
    ("raw", pa.string(), "The line as delivered (first 64 KiB)."),
    ("raw_truncated", pa.bool_(), "True when `raw` was cut at 64 KiB."),
)

EARLIER_IDS = pa.schema([EVENTS_SCHEMA.field("event_id").remove_metadata()])
ROW_GROUP_ROWS = 122_880  # DuckDB's own row-group size; fixed, so a rerun writes the same bytes
KNOWN_FIELDS = ("event_id", "ts", "event_type", "user_id", "photo_id", "client")
EVENT_TYPES = ("login", "view", "like", "comment", "share", "post")
# A time of day ending in Z or an offset. Timestamps without one are read as UTC and counted
# (`timestamps_without_zone`); a date without a time, or hour 24, is a bad timestamp.
ZONE_SUFFIX = r"\d{2}:\d{2}(:\d{2}(\.\d*)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"

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

# The fast path, for nearly every line: parse the known fields straight into their types and
# accept the line only when it is, byte for byte, the minified record those values make (so
# its kinds are right and no string held an escape) and it passes every rule. Drift, a record
# that goes on with more fields after the known ones, is kept whole in `extra_json`. Any
# other line is a suspect: its text is kept for JUDGE_SQL, which has the reasons.
FAST_SQL = """
WITH parsed AS (
    SELECT file_index, line_number, raw, read_error,
           CASE WHEN read_error IS NULL AND json_valid(raw) THEN from_json(raw, $typed_fields) END AS s
    FROM lines
), canonical AS (
    SELECT file_index, line_number, raw, read_error, s.event_id, s.ts AS ts_text, TRY_CAST(s.ts AS TIMESTAMPTZ) AS ts,
           s.event_type,
           s.user_id, s.photo_id, s.client,
           concat('{"event_id":"', s.event_id, '","ts":"', s.ts, '","event_type":"', s.event_type,
                  '","user_id":', s.user_id, ',"photo_id":', coalesce(s.photo_id::VARCHAR, 'null'),
                  ',"client":"', s.client, '"') AS known
    FROM parsed
), shaped AS (
    SELECT *, starts_with(raw, known) AND strlen(raw) = strlen(known) + 1 AND ends_with(raw, '}') AS exact,
           CASE WHEN strlen(raw) > strlen(known) + 3 THEN starts_with(raw, known || ',"') AND ends_with(raw, '}')
                ELSE false END AS drifted
    FROM canonical
), checked AS (
    SELECT *, coalesce((exact OR drifted) AND ascii(event_id) > 32 AND user_id IS NOT NULL AND client IS NOT NULL
                       AND (ends_with(ts_text, 'Z') OR regexp_matches(ts_text, $zone_suffix)) AND substr(ts_text, 12, 2) <> '24'
                       AND event_type IN $event_types
                       AND (photo_id IS NOT NULL OR event_type = 'login') AND ts >= $day_start AND ts < $day_end,
                       false) AS ok
    FROM shaped
)
SELECT file_index, line_number, NOT ok AS suspect, event_id, ts, event_type, user_id, photo_id, client,
       CASE WHEN ok AND drifted THEN raw END AS extra_json,
       CASE WHEN NOT ok THEN raw END AS raw,
       read_error
FROM checked
"""

# The suspects, judged field by field: json_extract pulls the six known fields as JSON text
# and every rejected line gets exactly one reason. A suspect can still be valid (an escaped
# string, other key order, whitespace, a missing photo_id on a login).
JUDGE_SQL = r"""
WITH fields AS (
    SELECT file_index, line_number, raw, read_error, j, j IS NOT NULL AS is_json,
           CASE WHEN starts_with(raw, '{') THEN j IS NOT NULL ELSE json_type(j) = 'OBJECT' END AS is_object,
           json_extract(j, ['$.event_id', '$.ts', '$.event_type', '$.user_id', '$.photo_id', '$.client'])::VARCHAR[] AS v
    FROM (SELECT *, CASE WHEN read_error IS NULL THEN TRY_CAST(raw AS JSON) END AS j
          FROM classified WHERE suspect)
), typed AS (
    SELECT *, json_str(v[1]) AS event_id, json_str(v[2]) AS ts_text, TRY_CAST(json_str(v[2]) AS TIMESTAMPTZ) AS ts,
           json_str(v[3]) AS event_type,
           json_int(v[4]) AS user_id, json_int(v[5]) AS photo_id, json_str(v[6]) AS client,
           CASE WHEN is_object THEN json_keys(j) END AS keys
    FROM fields
), judged AS (
    SELECT *, CASE
           WHEN read_error IS NOT NULL THEN read_error
           WHEN regexp_full_match(raw, '\s*') THEN 'blank_line'
           WHEN NOT is_json THEN 'malformed_json'
           WHEN NOT is_object THEN 'not_an_object'
           WHEN json_missing(v[1]) THEN 'missing_field: event_id'
           WHEN json_missing(v[2]) THEN 'missing_field: ts'
           WHEN json_missing(v[3]) THEN 'missing_field: event_type'
           WHEN json_missing(v[4]) THEN 'missing_field: user_id'
           WHEN json_missing(v[6]) THEN 'missing_field: client'
           WHEN event_id IS NULL THEN 'wrong_type: event_id must be a non-empty string, got ' || json_kind(v[1])
           WHEN regexp_full_match(event_id, '\s*') THEN 'missing_event_id: empty or whitespace only'
           WHEN json_str(v[2]) IS NULL THEN 'wrong_type: ts must be an ISO-8601 string, got ' || json_kind(v[2])
           WHEN event_type IS NULL THEN 'wrong_type: event_type must be a string, got ' || json_kind(v[3])
           WHEN user_id IS NULL THEN 'wrong_type: user_id must be an integer, got ' || json_kind(v[4])
           WHEN photo_id IS NULL AND NOT json_missing(v[5])
               THEN 'wrong_type: photo_id must be an integer, got ' || json_kind(v[5])
           WHEN client IS NULL THEN 'wrong_type: client must be a string, got ' || json_kind(v[6])
           WHEN ts IS NULL OR regexp_full_match(ts_text, '\d{4}-\d{2}-\d{2}') OR regexp_matches(ts_text, '[Tt ]24:')
               THEN 'bad_timestamp: ' || left(ts_text, 64)
           WHEN event_type NOT IN $event_types THEN 'unknown_event_type: ' || left(event_type, 64)
           WHEN event_type <> 'login' AND photo_id IS NULL THEN 'missing_field: photo_id (required for ' || event_type || ')'
           WHEN ts < $day_start OR ts >= $day_end
               THEN 'timestamp_outside_partition: ' || strftime(ts::TIMESTAMP, '%Y-%m-%dT%H:%M:%SZ')
       END AS reason
    FROM typed
)
SELECT file_index, line_number, reason, event_id, ts, event_type, user_id, photo_id, client,
       CASE WHEN reason IS NULL AND (len(list_filter(keys, lambda k: k NOT IN $known_fields)) > 0
                                     OR len(keys) > len(list_distinct(keys)))
            THEN raw END AS extra_json,
       raw,
       reason IS NULL AND NOT regexp_matches(ts_text, $zone_suffix) AS without_zone
FROM judged
"""

# Every valid line once, from either path, with its delivery: file, then line, as one number.
VALID_SQL = """
CREATE TEMP VIEW valid AS
SELECT *, file_index::BIGINT << 32 | line_number AS delivery FROM (
    SELECT file_index, line_number, event_id, ts, event_type, user_id, photo_id, client, extra_json
    FROM classified WHERE NOT suspect
    UNION ALL
    SELECT file_index, line_number, event_id, ts, event_type, user_id, photo_id, client, extra_json
    FROM judged WHERE reason IS NULL
)
"""

# Duplicates are rare: find the ids seen more than once and keep their first delivery instead
# of ranking every row. An id an earlier part of the day holds (`earlier`) was delivered first
# there: every delivery of it here is a duplicate. Ids are long strings, so the day's are
# grouped by their 64-bit hash first (a spillable aggregate of 8-byte keys): only the few
# hashes seen twice, here or here and before, are then compared as ids.
DEDUPE_SQL = """
CREATE TEMP TABLE suspects AS
SELECT h FROM (SELECT hash(event_id) AS h, false AS before FROM valid UNION ALL SELECT hash(event_id), true FROM earlier)
GROUP BY h HAVING count(*) FILTER (NOT before) > 1 OR (bool_or(before) AND bool_or(NOT before));
CREATE TEMP TABLE repeated AS
SELECT event_id, min(delivery) AS first_delivery, count(*) AS deliveries
FROM valid WHERE hash(event_id) IN (SELECT h FROM suspects) GROUP BY event_id HAVING count(*) > 1;
CREATE TEMP TABLE staged_before AS
SELECT DISTINCT event_id FROM earlier
WHERE hash(event_id) IN (SELECT h FROM suspects)
  AND event_id IN (SELECT event_id FROM valid WHERE hash(event_id) IN (SELECT h FROM suspects));
CREATE TEMP VIEW events AS
SELECT event_id, ts, event_type, user_id, photo_id, client, file_index, extra_json
FROM valid LEFT JOIN repeated USING (event_id)
WHERE (first_delivery IS NULL OR first_delivery = delivery) AND event_id NOT IN (SELECT event_id FROM staged_before);
"""

# The source file is named after the sort, batch by batch (a small int until then).
SELECT_EVENTS_SQL = "SELECT * FROM events ORDER BY ts, event_id"

SELECT_QUARANTINE_SQL = """
SELECT $day::DATE AS partition_date, files.source_file, line_number, reason,
       left(raw, 65536) AS raw, length(raw) > 65536 AS raw_truncated
FROM judged JOIN files USING (file_index)
WHERE reason IS NOT NULL AND reason <> 'blank_line'
ORDER BY source_file, line_number
"""

STATS_SQL = """
SELECT (SELECT count(*) FROM classified) AS lines,
       (SELECT count(*) FROM valid) AS valid_lines,
       (SELECT count(*) FROM judged WHERE reason IS NOT NULL AND reason <> 'blank_line') AS quarantined,
       (SELECT count(*) FROM judged WHERE reason = 'blank_line') AS blank_lines,
       (SELECT count(*) FROM judged WHERE without_zone) AS timestamps_without_zone,
       (SELECT coalesce(sum(deliveries - 1), 0) FROM repeated WHERE event_id NOT IN (SELECT event_id FROM staged_before))
       + (SELECT count(*) FROM valid WHERE event_id IN (SELECT event_id FROM staged_before)) AS duplicates_removed
"""

REASONS_SQL = """
SELECT split_part(reason, ':', 1) AS reason, count(*) AS n FROM judged
WHERE reason IS NOT NULL AND reason <> 'blank_line' GROUP BY ALL ORDER BY n DESC, reason
"""

DRIFT_SQL = """
SELECT f AS field, count(*) AS n
FROM (SELECT unnest(list_filter(json_keys(extra_json), lambda k: k NOT IN $known_fields)) AS f
      FROM events WHERE extra_json IS NOT NULL)
GROUP BY ALL ORDER BY n DESC, field
"""


# Checks on the events as written: earlier parts of the day passed theirs, and these hold no
# id of theirs by construction, which `ids_staged_before` verifies. Ids are grouped (a
# spillable aggregate), not counted distinct; an id of an earlier part here would have its
# hash among the suspects, so only the earlier ids with such a hash are looked up.
CHECKS_SQL = """
WITH written AS (SELECT * FROM read_parquet($path)),
     ids AS (SELECT event_id, count(*) AS n FROM written GROUP BY event_id)
SELECT count(*) FILTER (event_id IS NULL OR ts IS NULL OR user_id IS NULL OR event_type IS NULL) AS null_keys,
       count(*) FILTER (ts < $day_start OR ts >= $day_end)                                      AS outside_day,
       (SELECT coalesce(sum(n - 1), 0) FROM ids)                                                AS duplicate_ids,
       count(*) FILTER (event_id IN (SELECT event_id FROM earlier
                                     WHERE hash(event_id) IN (SELECT h FROM suspects)))         AS ids_staged_before
FROM written
"""


@dataclass(frozen=True)
class EventStats:
    """Line counts of a day's log files (or of the part a run staged): `STATS_SQL`'s columns."""

    lines: int = 0
    valid_lines: int = 0
    quarantined: int = 0  # rejected lines, blank ones not included
    blank_lines: int = 0
    timestamps_without_zone: int = 0  # read as UTC
    duplicates_removed: int = 0  # within the lines, and ids an earlier part of the day holds
    events: int = 0  # valid_lines - duplicates_removed

    def __add__(self, other: EventStats) -> EventStats:
        return EventStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


@dataclass(frozen=True)
class EventsResult:
    events: Iterator[pa.Table]  # the day's events sorted by (ts, event_id), a row group at a time; read once
    quarantine: pa.Table
    stats: EventStats
    reasons: dict[str, int]
    unexpected_fields: dict[str, int]
    checks: Callable[[Path], dict[str, int]]  # CHECKS_SQL's counts over the events once written to a file


def _inline(sql: str) -> str:
    """Constants of the schema written into the SQL as literals (they are ours, not data)."""
    typed = {f: "BIGINT" if f.endswith("_id") and f != "event_id" else "VARCHAR" for f in KNOWN_FIELDS}
    return (
        sql.replace("$event_types", repr(EVENT_TYPES))
        .replace("$zone_suffix", f"'{ZONE_SUFFIX}'")
        .replace("$known_fields", f"[{', '.join(map(repr, KNOWN_FIELDS))}]")
        .replace("$typed_fields", repr(json.dumps(typed, separators=(",", ":"))))
    )


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=timezone.utc)  # noqa: UP017 (UTC names the Arrow type here)
    return start, start + timedelta(days=1)


def _keep_earlier_ids_that_may_repeat(con: duckdb.DuckDBPyConnection, earlier_ids: Iterator[pa.RecordBatch]) -> None:
    """The `earlier` table: the earlier parts' ids whose hash one of these lines' valid ids has,
    the only ones that can be repeated here. The rest stream past: by evening a day's parts
    hold millions of ids, and a 10 M-event day's arrivals ran DuckDB out of memory holding
    them all (6.4 M ids against 256 MB, docs/BENCHMARKS.md)."""
    first = next(earlier_ids, None)
    if first is None:  # the day's first part, or a restage
        con.execute("CREATE TEMP TABLE earlier (event_id VARCHAR)")
        return
    con.execute("CREATE TEMP TABLE valid_hashes AS SELECT DISTINCT hash(event_id) AS h FROM valid")
    con.register("earlier_ids", pa.RecordBatchReader.from_batches(EARLIER_IDS, itertools.chain([first], earlier_ids)))
    con.execute(
        "CREATE TEMP TABLE earlier AS SELECT event_id FROM earlier_ids WHERE hash(event_id) IN (SELECT h FROM valid_hashes)"
    )
    con.unregister("earlier_ids")


@contextmanager
def transform_events(
    log_lines: LogLines,
    day: date,
    memory_limit: str | None = None,
    threads: int | None = None,
    earlier_ids: Iterable[pa.RecordBatch] = (),
) -> Iterator[EventsResult]:
    """Parse, type, validate and deduplicate one day's raw log lines.

    Lines become compact typed rows as they arrive and their text is dropped (suspect lines
    keep theirs); the sorted events then stream out a row group at a time while the context
    is open. Memory follows the day's events, not its text, and there is never a second
    whole copy of the output; past `memory_limit` DuckDB spills to a temporary directory
    instead of failing. DuckDB gets `threads`, by default the cores this process may use (not
    the machine's: under `taskset` or a container's cpuset, more threads only contend).
    `earlier_ids` (`event_id` batches): ids the day's earlier parts hold, left out here as
    duplicates; DuckDB keeps only those whose hash one of these lines' ids has.
    """
    with duck.connect(memory_limit, threads) as con:
        day_params = dict(zip(("day_start", "day_end"), day_bounds(day)))
        con.execute(MACROS_SQL)
        # One query over the whole day, pulling a file's lines at a time as the reader decompresses them.
        con.register("lines", log_lines.reader())
        con.execute(f"CREATE TEMP TABLE classified AS {_inline(FAST_SQL)}", day_params)
        con.unregister("lines")
        con.execute(f"CREATE TEMP TABLE judged AS {_inline(JUDGE_SQL)}", day_params)
        con.execute(VALID_SQL)
        _keep_earlier_ids_that_may_repeat(con, iter(earlier_ids))
        con.execute(DEDUPE_SQL)
        con.register(
            "files",
            pa.table(
                {
                    "file_index": pa.array(range(len(log_lines.files)), pa.int32()),
                    "source_file": pa.array(log_lines.files, pa.string()),
                }
            ),
        )
        quarantine = conform_to(
            con.sql(SELECT_QUARANTINE_SQL, params={"day": day.isoformat()}).to_arrow_table(), QUARANTINE_SCHEMA
        )
        stats_query = con.sql(STATS_SQL)
        (stats_row,) = stats_query.fetchall()
        counts = dict(zip(stats_query.columns, map(int, stats_row)))
        stats = EventStats(**counts, events=counts["valid_lines"] - counts["duplicates_removed"])
        reasons = dict(con.sql(REASONS_SQL).fetchall())
        drift = dict(con.sql(_inline(DRIFT_SQL)).fetchall())

        def checks(path: Path) -> dict[str, int]:
            row = con.sql(CHECKS_SQL, params={"path": str(path), **day_params})
            return dict(zip(row.columns, map(int, row.fetchall()[0])))

        yield EventsResult(_sorted_events(con, log_lines.files), quarantine, stats, reasons, drift, checks)


def _sorted_events(con: duckdb.DuckDBPyConnection, files: list[str]) -> Iterator[pa.Table]:
    """The events a row group at a time, each named by its source file."""
    names = pa.array(files, pa.string())
    for batch in con.sql(SELECT_EVENTS_SQL).to_arrow_reader(ROW_GROUP_ROWS):
        table = pa.Table.from_batches([batch])
        yield conform_to(table.append_column("source_file", names.take(table["file_index"])), EVENTS_SCHEMA)


def write_events(events: Iterator[pa.Table], path: Path, head_rows: int = 5) -> pa.Table:
    """Write streamed events as Parquet, one row group per batch; returns the first rows.

    Dictionary encoding only where values repeat: trying it on ids and raw records costs
    time and saves nothing.
    """
    head = EVENTS_SCHEMA.empty_table()
    with pq.ParquetWriter(
        path,
        EVENTS_SCHEMA,
        compression="zstd",
        use_dictionary=["event_type", "client", "source_file"],
        write_statistics=True,
        store_schema=True,
    ) as writer:
        for table in events:
            writer.write_table(table)
            if head.num_rows < head_rows:
                head = pa.concat_tables([head, table.slice(0, head_rows - head.num_rows)])
    return head

"""Staging for the app-database snapshots: typed, deduplicated, referentially checked.

Schema drift is absorbed before the SQL runs: a missing optional column becomes NULL, an
unexpected column is reported, a missing required column stops the run with its name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import pyarrow as pa

from platform_assets.lib import duck
from platform_assets.lib.staging.arrow_utils import conform_to, described_schema

UTC = pa.timestamp("us", tz="UTC")
USERS_SCHEMA = described_schema(
    ("user_id", pa.int64(), "App user id (primary key)."),
    ("username", pa.string(), "Handle, trimmed."),
    ("signup_at", UTC, "When the account was created, UTC."),
    ("country", pa.string(), "ISO 3166 country code, upper case."),
    ("timezone", pa.string(), "IANA time zone of the user, when known."),
)
PHOTOS_SCHEMA = described_schema(
    ("photo_id", pa.int64(), "Photo id (primary key)."),
    ("user_id", pa.int64(), "Author; always a user present in `staging/users`."),
    ("posted_at", UTC, "When the photo was posted, UTC."),
    ("title", pa.string(), "Title as typed by the author."),
    ("latitude", pa.float64(), "Degrees; NULL when unknown or outside [-90, 90]."),
    ("longitude", pa.float64(), "Degrees; NULL when unknown or outside [-180, 180]."),
    ("image_key", pa.string(), "Object-store key of the image, `images/<photo_id>.jpg`."),
)
DB_QUARANTINE_SCHEMA = described_schema(
    ("source_table", pa.string(), "App-database table the row came from."),
    ("reason", pa.string(), "Why the row was rejected: '<kind>: <detail>'."),
    ("raw", pa.string(), "The row as extracted, as JSON."),
)

USERS_COLUMNS = {"user_id": True, "username": True, "signup_at": True, "country": False, "timezone": False}
PHOTOS_COLUMNS = {
    "photo_id": True,
    "user_id": True,
    "posted_at": True,
    "title": False,
    "latitude": False,
    "longitude": False,
    "image_key": True,
}

# `raw` is the snapshot as it streams in; `checked` is the one copy DuckDB holds (spilling past
# its memory limit); the valid rows stream out of a query on it, never a second table.
USERS_CHECKED_SQL = """
CREATE TEMP TABLE checked AS
SELECT *,
       CASE
           WHEN TRY_CAST(user_id AS BIGINT) IS NULL THEN 'bad_key: user_id is missing or not an integer'
           WHEN row_number() OVER (PARTITION BY TRY_CAST(user_id AS BIGINT) ORDER BY signup_at) > 1
               THEN 'duplicate_key: user_id'
           WHEN username IS NULL OR trim(username) = '' THEN 'missing_value: username'
           WHEN TRY_CAST(signup_at AS TIMESTAMPTZ) IS NULL THEN 'bad_timestamp: signup_at'
       END AS reason
FROM raw
"""

USERS_VALID_SQL = """
SELECT CAST(user_id AS BIGINT)        AS user_id,
       trim(username)                 AS username,
       CAST(signup_at AS TIMESTAMPTZ) AS signup_at,
       upper(country)                 AS country,
       timezone
FROM checked
WHERE reason IS NULL
ORDER BY user_id
"""

PHOTOS_CHECKED_SQL = """
CREATE TEMP TABLE checked AS
SELECT *,
       CASE
           WHEN TRY_CAST(photo_id AS BIGINT) IS NULL THEN 'bad_key: photo_id is missing or not an integer'
           WHEN row_number() OVER (PARTITION BY TRY_CAST(photo_id AS BIGINT) ORDER BY posted_at) > 1
               THEN 'duplicate_key: photo_id'
           WHEN TRY_CAST(user_id AS BIGINT) NOT IN (SELECT user_id FROM users) OR user_id IS NULL
               THEN 'unknown_user: ' || coalesce(CAST(user_id AS VARCHAR), 'NULL')
           WHEN TRY_CAST(posted_at AS TIMESTAMPTZ) IS NULL THEN 'bad_timestamp: posted_at'
           WHEN NOT regexp_full_match(coalesce(image_key, ''), 'images/[A-Za-z0-9_.=-]+')
               THEN 'bad_image_key: ' || coalesce(image_key, 'NULL')
       END AS reason
FROM raw
"""

PHOTOS_VALID_SQL = """
SELECT CAST(photo_id AS BIGINT)                                           AS photo_id,
       CAST(user_id AS BIGINT)                                            AS user_id,
       CAST(posted_at AS TIMESTAMPTZ)                                     AS posted_at,
       title,
       -- coordinates outside the globe are unknown, not a reason to drop the photo
       CASE WHEN TRY_CAST(latitude AS DOUBLE) BETWEEN -90 AND 90 THEN TRY_CAST(latitude AS DOUBLE) END   AS latitude,
       CASE WHEN TRY_CAST(longitude AS DOUBLE) BETWEEN -180 AND 180 THEN TRY_CAST(longitude AS DOUBLE) END AS longitude,
       image_key
FROM checked
WHERE reason IS NULL
ORDER BY photo_id
"""


@dataclass(frozen=True)
class StagedTable:
    valid: pa.Table
    quarantine: pa.Table
    missing_optional: list[str]
    unexpected: list[str]


@dataclass(frozen=True)
class StagedStream:
    """A staged table whose valid rows stream out of DuckDB (`valid`, in key order, one pass)."""

    valid: Iterator[pa.Table]
    quarantine: pa.Table
    missing_optional: list[str]
    unexpected: list[str]


class SchemaBreak(ValueError):
    """The source lost a column we cannot do without."""


def conform(raw: pa.Table, columns: dict[str, bool], table: str) -> tuple[pa.Table, list[str], list[str]]:
    """Select the expected columns, NULL-filling missing optional ones."""
    present = set(raw.column_names)
    missing_required = [c for c, required in columns.items() if required and c not in present]
    if missing_required:
        raise SchemaBreak(
            f"app-database table {table!r} has no column(s) {missing_required}; "
            f"it has {sorted(present)}. Restore the column or update the staging contract."
        )
    missing = [c for c in columns if c not in present]
    arrays = [raw[c] if c in present else pa.nulls(raw.num_rows, pa.string()) for c in columns]
    return pa.table(arrays, names=list(columns)), missing, sorted(present - set(columns))


STAGE_BATCH_ROWS = 1 << 16  # rows handed to and from DuckDB at a time


class Contract(NamedTuple):
    columns: dict[str, bool]  # expected columns: whether each is required
    checked_sql: str  # creates the `checked` table (each row and its reason to reject it, or NULL) from `raw`
    valid_sql: str  # selects the valid rows of `checked`, typed and in key order
    schema: pa.Schema  # of the staged table


CONTRACTS = {
    "users": Contract(USERS_COLUMNS, USERS_CHECKED_SQL, USERS_VALID_SQL, USERS_SCHEMA),
    "photos": Contract(PHOTOS_COLUMNS, PHOTOS_CHECKED_SQL, PHOTOS_VALID_SQL, PHOTOS_SCHEMA),
}


@contextmanager
def staging(
    raw_schema: pa.Schema,
    raw: Iterable[pa.RecordBatch],
    table: str,
    user_ids: Iterable[pa.RecordBatch] | None = None,
) -> Iterator[StagedStream]:
    """Stage a snapshot read a batch at a time (`raw`, of `raw_schema`; for photos, `user_ids`:
    batches of the staged users' `user_id`). The rows go into DuckDB, which holds them within
    its memory limit and spills past it; the valid rows stream out while the context is open."""
    columns, checked_sql, valid_sql, schema = CONTRACTS[table]
    conformed, missing, unexpected = conform(raw_schema.empty_table(), columns, table)  # a SchemaBreak before any read
    batches = (
        b for batch in raw for b in conform(pa.Table.from_batches([batch], raw_schema), columns, table)[0].to_batches()
    )
    with duck.connect() as con:
        con.register("raw", pa.RecordBatchReader.from_batches(conformed.schema, batches))
        if user_ids is not None:
            ids = (pa.record_batch([b.column(0)], names=["user_id"]) for b in user_ids)
            con.register("user_batches", pa.RecordBatchReader.from_batches(pa.schema([("user_id", pa.int64())]), ids))
            con.execute("CREATE TEMP TABLE users AS SELECT user_id FROM user_batches")
        con.execute(checked_sql)
        quarantine = con.sql(
            "SELECT $table AS source_table, reason, CAST(to_json(checked) AS VARCHAR) AS raw "
            "FROM checked WHERE reason IS NOT NULL ORDER BY raw",
            params={"table": table},
        ).to_arrow_table()
        valid = con.sql(valid_sql).fetch_record_batch(STAGE_BATCH_ROWS)
        yield StagedStream(
            (conform_to(pa.Table.from_batches([b]), schema) for b in valid),
            conform_to(quarantine, DB_QUARANTINE_SCHEMA),
            missing,
            unexpected,
        )


def stage(raw: pa.Table, table: str, users: pa.Table | None = None) -> StagedTable:
    """`staging` of a table in memory, its valid rows gathered (benchmarks and small tables)."""
    user_ids = users.select(["user_id"]).to_batches() if users is not None else None
    with staging(raw.schema, raw.to_batches(), table, user_ids) as staged:
        valid = pa.concat_tables([CONTRACTS[table].schema.empty_table(), *staged.valid])
        return StagedTable(valid, staged.quarantine, staged.missing_optional, staged.unexpected)

"""`events`: one day of raw logs parsed, typed, deduplicated and checked; rejects quarantined."""

import tempfile
from pathlib import Path

import dagster as dg
from pydantic import Field

from platform_assets.defs.keys import EVENTS, EVENTS_QUARANTINE, RAW_LOGS
from platform_assets.defs.metadata import column_schema, table_metadata
from platform_assets.defs.partitions import daily, partition_day
from platform_assets.defs.resources import LakeResource
from platform_assets.defs.retry import IO_RETRY, transient_retries
from platform_assets.lib import duck
from platform_assets.lib.lake_layout import (
    EVENTS_PATH,
    EVENTS_QUARANTINE_PATH,
    SOURCE_DIGEST,
    DayListing,
    log_day,
    log_day_prefix,
    partition_key,
)
from platform_assets.lib.staging.events import (
    DUCKDB_MEMORY_LIMIT,
    EVENTS_SCHEMA,
    QUARANTINE_SCHEMA,
    day_bounds,
    transform_events,
    write_events,
)
from platform_assets.lib.staging.log_lines import read_log_lines

# Checks on the written partition, in one DuckDB pass over the Arrow table.
CHECKS_SQL = """
SELECT count(*) FILTER (event_id IS NULL OR ts IS NULL OR user_id IS NULL OR event_type IS NULL) AS null_keys,
       count(*) FILTER (ts < $day_start OR ts >= $day_end)                                      AS outside_day,
       count(*) - count(DISTINCT event_id)                                                      AS duplicate_ids
FROM read_parquet($path)
"""


class EventsConfig(dg.Config):
    max_quarantine_share: float = Field(
        default=0.02, description="Warn when more than this share of a day's lines is quarantined."
    )
    duckdb_memory_limit: str = Field(
        default=DUCKDB_MEMORY_LIMIT,
        pattern=r"^\d+(\.\d+)?\s*([KMGT]i?B|%)$",
        description="DuckDB's memory for the day (e.g. '1GB'); beyond it the sort spills to disk instead of failing.",
    )


@dg.multi_asset(
    retry_policy=IO_RETRY,
    name="stage_events",
    partitions_def=daily,
    specs=[
        dg.AssetSpec(
            EVENTS,
            deps=[RAW_LOGS],
            group_name="staging",
            kinds={"duckdb", "parquet"},
            description="Activity events of one UTC day: typed, UTC timestamps, one row per event id.",
            metadata={"dagster/column_schema": column_schema(EVENTS_SCHEMA)},
        ),
        dg.AssetSpec(
            EVENTS_QUARANTINE,
            deps=[RAW_LOGS],
            group_name="staging",
            kinds={"duckdb", "parquet"},
            description="Every rejected log line of the day with its source file, line number, reason and text.",
            metadata={"dagster/column_schema": column_schema(QUARANTINE_SCHEMA)},
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec("keys_not_null", asset=EVENTS, description="event_id, ts, user_id, event_type set."),
        dg.AssetCheckSpec("event_time_in_partition", asset=EVENTS, description="Every ts inside the day."),
        dg.AssetCheckSpec("no_duplicate_event_ids", asset=EVENTS, description="Zero duplicate ids after dedupe."),
        dg.AssetCheckSpec(
            "quarantine_share_below_threshold",
            asset=EVENTS_QUARANTINE,
            description="Share of quarantined lines below `max_quarantine_share` (warning only).",
        ),
    ],
)
@transient_retries
def stage_events(context: dg.AssetExecutionContext, config: EventsConfig, lake: LakeResource):
    day = partition_day(context)
    store = lake.store()
    listed = store.list_files(log_day_prefix(day.isoformat()))
    # In landing order: a duplicate event is credited to its first delivery, not to a redelivery whose name sorts first.
    in_layout = [f for f in listed if log_day(f.key)]
    keys = [f.key for f in sorted(in_layout, key=lambda f: (f.landed_ns, f.key))]
    skipped = [f.key for f in listed if not log_day(f.key)]
    if skipped:
        context.log.warning(
            f"{day}: {len(skipped)} files outside the lake layout "
            f"(logs/dt=YYYY-MM-DD/hour=00..23/*.jsonl.gz) skipped: {skipped[:20]}"
        )
    lines = read_log_lines(store, keys)
    with (
        tempfile.TemporaryDirectory(prefix="events-") as tmp,
        transform_events(lines, day, config.duckdb_memory_limit) as result,
    ):
        events_file = Path(tmp) / "events.parquet"
        events_head = write_events(result.events, events_file)
        start, end = day_bounds(day)
        with duck.connect() as con:  # the checks read the file as written, before it is published
            null_keys, outside_day, duplicate_ids = con.sql(
                CHECKS_SQL, params={"path": str(events_file), "day_start": start, "day_end": end}
            ).fetchall()[0]
        quarantine_key = partition_key(EVENTS_QUARANTINE_PATH, day.isoformat())
        quarantine_size = store.write_parquet(quarantine_key, result.quarantine)
        events_key = partition_key(EVENTS_PATH, day.isoformat())
        events_size = store.put_file(events_key, events_file)
    stats = result.stats
    context.log.info(f"{day}: {len(keys)} files, {stats}")
    if stats["events"] == 0:
        context.log.warning(f"{day}: no valid events ({len(keys)} log files): is the upstream dump empty?")
    if result.unexpected_fields:
        context.log.warning(f"schema drift: unexpected fields {result.unexpected_fields} kept in extra_json")

    yield dg.MaterializeResult(
        asset_key=EVENTS,
        metadata=table_metadata(events_head, store.uri(events_key), events_size, row_count=stats["events"])
        | {
            "source_files": len(keys),
            SOURCE_DIGEST: DayListing(in_layout).digest,  # the sensor requests no day already staged from these files
            "lines_read": stats["lines"],
            "quarantined_lines": stats["quarantined"],
            "duplicates_removed": stats["duplicates_removed"],
            "blank_lines": stats["blank_lines"],
            "timestamps_without_zone": stats["timestamps_without_zone"],
            "skipped_files": dg.MetadataValue.json(skipped),
            "empty_day": stats["events"] == 0,
            "drift_unexpected_fields": dg.MetadataValue.json(result.unexpected_fields),
        },
    )
    yield dg.MaterializeResult(
        asset_key=EVENTS_QUARANTINE,
        metadata=table_metadata(result.quarantine, store.uri(quarantine_key), quarantine_size)
        | {"reasons": dg.MetadataValue.json(result.reasons)},
    )

    yield dg.AssetCheckResult(
        check_name="keys_not_null", asset_key=EVENTS, passed=null_keys == 0, metadata={"rows_with_null_keys": null_keys}
    )
    yield dg.AssetCheckResult(
        check_name="event_time_in_partition",
        asset_key=EVENTS,
        passed=outside_day == 0,
        metadata={"rows_outside_day": outside_day},
    )
    yield dg.AssetCheckResult(
        check_name="no_duplicate_event_ids",
        asset_key=EVENTS,
        passed=duplicate_ids == 0,
        metadata={"duplicate_ids": duplicate_ids},
    )
    share = stats["quarantined"] / stats["lines"] if stats["lines"] else 0.0
    yield dg.AssetCheckResult(
        check_name="quarantine_share_below_threshold",
        asset_key=EVENTS_QUARANTINE,
        passed=share <= config.max_quarantine_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantine_share": share, "threshold": config.max_quarantine_share},
    )

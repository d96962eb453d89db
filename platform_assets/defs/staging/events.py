"""`events`: one day of raw logs parsed, typed, deduplicated and checked; rejects quarantined."""

import dagster as dg
from pydantic import Field

from platform_assets.defs.keys import EVENTS, EVENTS_QUARANTINE, RAW_LOGS
from platform_assets.defs.metadata import column_schema, preview, table_metadata
from platform_assets.defs.partitions import daily, partition_day
from platform_assets.defs.resources import LakeResource
from platform_assets.defs.retry import IO_RETRY, fail_fast_unless_transient
from platform_assets.lib.duck import MEMORY_PER_THREAD_MB
from platform_assets.lib.lake_layout import (
    EVENTS_PATH,
    EVENTS_QUARANTINE_PATH,
    SOURCE_DIGEST,
    DayListing,
    log_day,
    log_day_prefix,
)
from platform_assets.lib.staging.day_parts import StagingConflict, stage_day
from platform_assets.lib.staging.events import EVENTS_SCHEMA, QUARANTINE_SCHEMA


class EventsConfig(dg.Config):
    max_quarantine_share: float = Field(
        default=0.02, description="Warn when more than this share of a day's lines is quarantined."
    )
    duckdb_memory_limit: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+)?\s*([KMGT]i?B|%)$",
        description=(
            f"DuckDB's memory for the day (e.g. '1GB'; by default {MEMORY_PER_THREAD_MB} MB per core this run may use);"
            " beyond it the sort spills to disk instead of failing."
        ),
    )
    restage: bool = Field(
        default=False,
        description="Stage every file of the day again into one part, instead of appending the files not staged yet.",
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
@fail_fast_unless_transient
def stage_events(context: dg.AssetExecutionContext, config: EventsConfig, lake: LakeResource):
    day = partition_day(context)
    store = lake.store()
    listed = store.list_files(log_day_prefix(day.isoformat()))
    # In landing order: a duplicate event is credited to its first delivery, not to a redelivery whose name sorts first.
    in_layout = sorted((f for f in listed if log_day(f.key)), key=lambda f: (f.landed_ns, f.key))
    skipped = [f.key for f in listed if not log_day(f.key)]
    if skipped:
        context.log.warning(
            f"{day}: {len(skipped)} files outside the lake layout "
            f"(logs/dt=YYYY-MM-DD/hour=00..23/*.jsonl.gz) skipped: {skipped[:20]}"
        )
    try:
        run = stage_day(store, day, in_layout, config.duckdb_memory_limit, config.restage)
    except StagingConflict as exc:
        raise dg.RetryRequested(max_retries=3, seconds_to_wait=1) from exc
    staged, stats = run.day, run.day.stats
    how = "whole day" if run.whole_day else f"{len(run.staged_files)} new of {len(staged.files)} files"
    context.log.info(f"{day}: staged {how} into {len(staged.parts)} parts; day totals {stats}")
    if stats.events == 0:
        context.log.warning(f"{day}: no valid events ({len(in_layout)} log files): is the upstream dump empty?")
    if staged.drift:
        context.log.warning(f"schema drift: unexpected fields {staged.drift} kept in extra_json")

    yield dg.MaterializeResult(
        asset_key=EVENTS,
        metadata=table_metadata(
            run.part_head, store.uri(f"{EVENTS_PATH}/dt={day}/"), run.part_bytes, row_count=stats.events
        )
        | {
            "source_files": len(staged.files),
            SOURCE_DIGEST: DayListing(in_layout).digest,  # the sensor requests no day already staged from these files
            "files_staged_by_this_run": len(run.staged_files),
            "staged_whole_day": run.whole_day,
            "parts": len(staged.parts),
            "lines_read": stats.lines,
            "quarantined_lines": stats.quarantined,
            "duplicates_removed": stats.duplicates_removed,
            "blank_lines": stats.blank_lines,
            "timestamps_without_zone": stats.timestamps_without_zone,
            "skipped_files": dg.MetadataValue.json(skipped),
            "empty_day": stats.events == 0,
            "drift_unexpected_fields": dg.MetadataValue.json(staged.drift),
        },
    )
    yield dg.MaterializeResult(
        asset_key=EVENTS_QUARANTINE,
        metadata={
            "dagster/row_count": stats.quarantined,
            "dagster/uri": dg.MetadataValue.path(store.uri(f"{EVENTS_QUARANTINE_PATH}/dt={day}/")),
            "new_rows": run.quarantine.num_rows,
            "preview": preview(run.quarantine),
            "reasons": dg.MetadataValue.json(staged.reasons),
        },
    )
    yield dg.AssetCheckResult(
        check_name="keys_not_null",
        asset_key=EVENTS,
        passed=run.checks["null_keys"] == 0,
        metadata={"rows_with_null_keys": run.checks["null_keys"]},
    )
    yield dg.AssetCheckResult(
        check_name="event_time_in_partition",
        asset_key=EVENTS,
        passed=run.checks["outside_day"] == 0,
        metadata={"rows_outside_day": run.checks["outside_day"]},
    )
    yield dg.AssetCheckResult(
        check_name="no_duplicate_event_ids",
        asset_key=EVENTS,
        passed=run.checks["duplicate_ids"] == 0 and run.checks["ids_staged_before"] == 0,
        metadata={
            "duplicate_ids": run.checks["duplicate_ids"],
            "ids_in_earlier_parts": run.checks["ids_staged_before"],
        },
    )
    share = stats.quarantined / stats.lines if stats.lines else 0.0
    yield dg.AssetCheckResult(
        check_name="quarantine_share_below_threshold",
        asset_key=EVENTS_QUARANTINE,
        passed=share <= config.max_quarantine_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantine_share": share, "threshold": config.max_quarantine_share},
    )

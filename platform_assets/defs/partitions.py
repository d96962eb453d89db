"""The daily partitions every log-derived asset shares (UTC days)."""

import re
from datetime import date, timedelta

import dagster as dg

from platform_assets.settings import START_DATE, start_date

# A run over a range of days (single-run backfill policy) is these two tags on an asset job's run.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


daily = dg.DailyPartitionsDefinition(
    start_date=start_date(),
    timezone="UTC",
    end_offset=1,  # today's partition exists: hourly logs land all day
)


def partition_day(context: dg.AssetExecutionContext) -> date:
    """The run's day, checked before anything is read or written: Dagster's CLI passes any
    `--partition` through, and a malformed or out-of-range key must fail at once, not after
    the lake was written."""
    key = context.partition_key
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", key) or not daily.has_partition_key(key):
        raise dg.Failure(
            f"partition {key!r} is not a day of this deployment: use YYYY-MM-DD from {start_date()} "
            f"({START_DATE.name}) to tomorrow, UTC",
            allow_retries=False,
        )
    return date.fromisoformat(key)


def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of one run over the days `first` to `last`, both included."""
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def partition_window(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """First and last day (inclusive) of the partitions this run materializes."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()

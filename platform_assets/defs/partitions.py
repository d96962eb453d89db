"""The daily partitions every log-derived asset shares (UTC days)."""

import os
import re
from datetime import date, timedelta

import dagster as dg

START_DATE_ENV = "PLATFORM_ASSETS_START_DATE"
# A run over a range of days (single-run backfill policy) is these two tags on an asset job's run.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def start_date() -> str:
    """`$PLATFORM_ASSETS_START_DATE`, checked where it is read: one line naming it, never a traceback
    from deep in Dagster's partition code."""
    value = os.environ.get(START_DATE_ENV, "2026-01-01")
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{START_DATE_ENV}={value!r} is not a date: use YYYY-MM-DD, e.g. 2026-01-01") from None
    return value


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
            f"({START_DATE_ENV}) to tomorrow, UTC",
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

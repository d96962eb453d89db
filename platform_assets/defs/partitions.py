"""The daily partitions every log-derived asset shares (UTC days)."""

import os

import dagster as dg

daily = dg.DailyPartitionsDefinition(
    start_date=os.environ.get("PLATFORM_ASSETS_START_DATE", "2026-01-01"),
    timezone="UTC",
    end_offset=1,  # today's partition exists: hourly logs land all day
)

"""The hourly activity logs: an external source the platform observes but never writes."""

import dagster as dg

from platform_assets.defs.keys import RAW_LOGS
from platform_assets.defs.partitions import daily

raw_logs = dg.AssetSpec(
    key=RAW_LOGS,
    group_name="lake",
    kinds={"jsonl"},
    partitions_def=daily,
    description=(
        "Gzipped JSONL activity logs landing hourly under `logs/dt=YYYY-MM-DD/hour=HH/`. "
        "Observed by `new_logs_sensor`: each day's data version is a digest of its files' keys, sizes and times."
    ),
)

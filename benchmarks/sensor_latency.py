"""Benchmark: sensor-to-fresh latency under the daemon, on the production stack (PostgreSQL
instance, S3 lake, real `dagster-daemon`, default sensor intervals).

    .venv/bin/python -m benchmarks.sensor_latency [--files 4]

Each new hourly log file (one at a time; the first opens a new day) is timed from the moment
it lands to the moment its partition's `staging/events` and `features/user_activity` are both
materialized by runs that started after it landed. Prints the median and the worst (goal: under 60 s).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from benchmarks.common import bench_parser
from platform_assets.defs.keys import EVENTS, USER_ACTIVITY
from platform_assets.lib.simulator import LakeScale, append_hour
from platform_assets_tests.production_stack import production_stack, wait_for


def materialized_after(instance: dg.DagsterInstance, key: dg.AssetKey, day: str, since: float) -> float | None:
    """When `day` of `key` was last materialized by a run that started after `since`, else None."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
    ).records
    if not records:
        return None
    run = instance.get_run_record_by_id(records[0].run_id)
    return records[0].timestamp if run and run.start_time and run.start_time >= since else None


def main() -> None:
    parser = bench_parser()
    parser.add_argument("--files", type=int, default=4)
    args = parser.parse_args()
    scale = LakeScale(users=60, photos=200, days=1, events_per_day=3000, defect_rate=0.005, seed=9)
    latencies = []
    with tempfile.TemporaryDirectory() as tmp, production_stack(Path(tmp), scale) as stack:
        wait_for(lambda: materialized_after(stack.instance, USER_ACTIVITY, "2026-11-01", 0), 300, "the first day")
        for _ in range(args.files):
            landed = time.time()
            keys = append_hour(stack.lake)  # the next hour: the first one opens a new day
            day = keys[0].split("/")[1].removeprefix("dt=")
            wait_for(
                lambda day=day, landed=landed: (
                    materialized_after(stack.instance, EVENTS, day, landed)
                    and materialized_after(stack.instance, USER_ACTIVITY, day, landed)
                ),
                600,
                f"{day}",
                poll=0.5,
            )
            done = max(
                materialized_after(stack.instance, EVENTS, day, landed),
                materialized_after(stack.instance, USER_ACTIVITY, day, landed),
            )
            latencies.append(done - landed)
            print(f"{day}: {latencies[-1]:.1f}s", flush=True)
    print(
        json.dumps(
            {
                "files": len(latencies),
                "median_seconds": round(statistics.median(latencies), 1),
                "worst_seconds": round(max(latencies), 1),
                "sensor_interval_seconds": 30,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

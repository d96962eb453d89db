"""Benchmark: sensor-to-fresh latency under the daemon, on the production stack (PostgreSQL
instance, S3 lake, real `dagster-daemon`, default sensor intervals).

    .venv/bin/python -m benchmarks.sensor_latency [--files 4] [--days 1] [--background-nice 0]

Each new hourly log file (one at a time; the first opens a new day) is timed from the moment
it lands to the moment its partition's `staging/events` is materialized by a run started after
it landed and `features/user_activity` computed from those events (in the same run, or in a run
that read them after: its `events_read_at`; activity read from the events before they changed
does not count). Per file it
prints where the time went, for each run on the path (from the instance's event log): the wait
for the sensor tick that requested it, the queue (enqueued → handed to the launcher), the
process start (spawn, imports, instance), the code-location load and run set-up, and each
step's work. Then the median and the worst (goal: 30 s median, 45 s worst). `--background-nice 0`
runs the background lane at normal priority: the baseline for the lane's lower priority.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from benchmarks.common import bench_parser
from platform_assets.defs.features.assets import EVENTS_READ_AT
from platform_assets.defs.keys import EVENTS, USER_ACTIVITY
from platform_assets.defs.lake.sensors import new_logs_sensor
from platform_assets.defs.materializations import latest_materialization, run_log
from platform_assets.defs.run_lanes import background_nice
from platform_assets.lib.lake_layout import day_range
from platform_assets.lib.simulator import LakeScale, append_hour
from platform_assets_tests.support.production_stack import production_stack, wait_for


def in_flight(instance: dg.DagsterInstance) -> bool:
    statuses = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    return bool(instance.get_run_records(dg.RunsFilter(statuses=statuses), limit=1))


def started(instance: dg.DagsterInstance, run_id: str) -> float:
    return instance.get_run_record_by_id(run_id).start_time or float("inf")


def fresh(instance: dg.DagsterInstance, day: str, landed: float) -> tuple | None:
    """(events, activity) records once the day's events come from a run started after the file
    landed and its user activity was computed from events read after they were materialized
    (its `events_read_at`): in the same run, or in any run that read them after."""
    events, activity = (
        latest_materialization(instance, EVENTS, day),
        latest_materialization(instance, USER_ACTIVITY, day),
    )
    if events is None or activity is None or started(instance, events.run_id) < landed:
        return None
    read_at = activity.asset_materialization.metadata.get(EVENTS_READ_AT)
    return (events, activity) if read_at is not None and read_at.value >= events.timestamp else None


def run_phases(instance: dg.DagsterInstance, run_id: str, since: float) -> dict[str, float]:
    """Where a run's time went, from its event log: `since` is when its trigger happened. The
    queue ends when the daemon's coordinator hands the run to the launcher (RUN_STARTING); the
    process start (spawn, imports, instance) ends with the run process's first event; the code
    location load and run set-up end at RUN_START."""
    at: dict[str, float] = {}
    steps: dict[str, dict[str, float]] = {}
    for entry in run_log(instance, run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if entry.step_key:
            steps.setdefault(entry.step_key, {}).setdefault(kind, entry.timestamp)
        elif kind == "ENGINE_EVENT" and (event.message or "").startswith("Started process for run"):
            at.setdefault("PROCESS_STARTED", entry.timestamp)
        else:
            at.setdefault(kind, entry.timestamp)
    enqueued = at.get("PIPELINE_ENQUEUED", instance.get_run_record_by_id(run_id).create_timestamp.timestamp())
    starting = at.get("PIPELINE_STARTING", enqueued)
    process = at.get("PROCESS_STARTED", starting)
    phases = {
        "tick_wait": enqueued - since,
        "queue": starting - enqueued,
        "process_start": process - starting,
        "code_load": at["PIPELINE_START"] - process,
    }
    for step, times in steps.items():
        if "STEP_START" not in times:  # events logged under a step key before it started
            continue
        phases[f"{step}: work"] = times.get("STEP_SUCCESS", times["STEP_START"]) - times["STEP_START"]
        if "STEP_UP_FOR_RETRY" in times:
            phases[f"{step}: retried"] = 1
    return {k: round(v, 1) for k, v in phases.items()}


def cpu_counters() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies of the whole machine, from /proc/stat."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return user + nice + system + irq + softirq, steal, user + nice + system + idle + iowait + irq + softirq + steal


def machine_share(before: tuple[int, int, int], after: tuple[int, int, int]) -> dict[str, float]:
    """How busy the machine was between two readings, and how much the hypervisor took."""
    busy, steal, total = (b - a for a, b in zip(before, after, strict=True))
    return {"cpu_busy": round(busy / max(total, 1), 2), "steal": round(steal / max(total, 1), 2)}


def alongside(instance: dg.DagsterInstance, start: float, end: float, path: set[str]) -> list[str]:
    """The other runs that ran while the file was on its way (the follow-on work of earlier files)."""
    others = []
    for record in instance.get_run_records(dg.RunsFilter(updated_after=datetime.fromtimestamp(start, UTC))):
        began, ended = record.start_time, record.end_time
        if record.dagster_run.run_id not in path and began and began < end and (ended is None or ended > start):
            others.append(record.dagster_run.job_name)
    return sorted(others)


def path_breakdown(instance: dg.DagsterInstance, records: tuple, landed: float) -> dict[str, dict[str, float]]:
    """Each run on the file's path, in order, with its phases."""
    out, since = {}, landed
    for record in records:
        name = f"{instance.get_run_by_id(record.run_id).job_name} {record.run_id[:8]}"
        if name not in out:
            out[name] = run_phases(instance, record.run_id, since)
        since = record.timestamp
    return out


def main() -> None:
    parser = bench_parser()
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--days", type=int, default=1, help="days of history in the lake before the first file")
    parser.add_argument(
        "--background-nice",
        type=int,
        default=None,
        help="PLATFORM_ASSETS_BACKGROUND_NICE for the stack (0: the background lane at normal priority, the baseline)",
    )
    args = parser.parse_args()
    if args.background_nice is not None:  # the daemon, code servers and runs inherit it
        os.environ["PLATFORM_ASSETS_BACKGROUND_NICE"] = str(args.background_nice)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the S3 server's line per request
    scale = LakeScale(users=60, photos=200, days=args.days, events_per_day=3000, defect_rate=0.005, seed=9)
    first = date.fromisoformat(scale.start_date)
    history = day_range(first, first + timedelta(days=args.days - 1))
    latencies, breakdowns = [], []
    with tempfile.TemporaryDirectory() as tmp, production_stack(Path(tmp), scale) as stack:
        wait_for(  # the whole history staged and featurized, nothing in flight: then the files come
            lambda: (
                all(latest_materialization(stack.instance, USER_ACTIVITY, d) for d in history)
                and not in_flight(stack.instance)
            ),
            300 + 60 * args.days,
            "the lake's history",
        )
        for _ in range(args.files):
            cpu_before = cpu_counters()
            landed = time.time()
            keys = append_hour(stack.lake)  # the next hour: the first one opens a new day
            day = keys[0].split("/")[1].removeprefix("dt=")
            wait_for(lambda day=day, landed=landed: fresh(stack.instance, day, landed), 600, day, poll=0.5)
            records = fresh(stack.instance, day, landed)
            done = max(r.timestamp for r in records)
            latencies.append(done - landed)
            breakdowns.append(
                {
                    "day": day,
                    "seconds": round(done - landed, 1),
                    **path_breakdown(stack.instance, records, landed),
                    "alongside": alongside(stack.instance, landed, done, {r.run_id for r in records}),
                    **machine_share(cpu_before, cpu_counters()),
                }
            )
            print(json.dumps(breakdowns[-1]), flush=True)
    print(
        json.dumps(
            {
                "files": len(latencies),
                "median_seconds": round(statistics.median(latencies), 1),
                "worst_seconds": round(max(latencies), 1),
                "worst_over_median": round(max(latencies) / statistics.median(latencies), 2),
                "median_first_half": round(statistics.median(latencies[: len(latencies) // 2]), 1),
                "median_second_half": round(statistics.median(latencies[len(latencies) // 2 :]), 1),
                "history_days": args.days,
                "sensor_interval_seconds": new_logs_sensor.minimum_interval_seconds,
                "background_nice": background_nice(),
                "per_file": breakdowns,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

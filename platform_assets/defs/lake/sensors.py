"""`new_logs_sensor`: turn newly landed log files into runs for exactly the days they touch."""

import json
import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from platform_assets.defs.keys import EVENTS, PHOTOS, USERS
from platform_assets.defs.lake.jobs import ONE_HOP, STAGE_EVENTS, events_job
from platform_assets.defs.lake.raw_logs import raw_logs
from platform_assets.defs.materializations import all_materialized, latest_materialization
from platform_assets.defs.resources import LakeResource
from platform_assets.lib.lake_layout import SOURCE_DIGEST, list_log_days

# The run queue (deploy/*/dagster.yaml) runs one staging run per value at a time: a day's runs
# append parts to it, and two at once would race for the same one.
EVENTS_DAY_TAG = "platform_assets/events_day"
# Every tick lists only the newest days' folders; the whole logs prefix is listed this often,
# which bounds how long a late file for an older day waits (and how often strays are reported).
FULL_SWEEP_SECONDS = 300


def _selection(instance: dg.DagsterInstance, changed_days: int) -> list[dg.AssetKey]:
    """The day's user activity joins the run for a single changed day once users and photos are
    staged. A burst of days goes the ranged way (`features_sensor`): activity reads 30 days of
    events, which runs for the other days may still be writing."""
    staged = all_materialized(instance, [USERS, PHOTOS])
    return [*STAGE_EVENTS, *ONE_HOP] if changed_days == 1 and staged else STAGE_EVENTS


def staged_digest(instance: dg.DagsterInstance, day: str) -> str | None:
    """The digest of the log files the day's latest `events` materialization read, whoever ran
    it (a sensor run, the demo, the CLI, a backfill): a day already staged from exactly the files
    listed now is not requested again, so a first start after `make demo` launches nothing."""
    record = latest_materialization(instance, EVENTS, day)
    if record is None:
        return None
    digest = record.asset_materialization.metadata.get(SOURCE_DIGEST)
    return digest.value if digest is not None else None


def hot_days(seen: dict[str, str], today: date) -> list[str]:
    """The days whose folders can get new files in the normal course: the newest day seen and
    the one after it (the next hour opens it), and yesterday and today by the clock."""
    newest = date.fromisoformat(max(seen)) if seen else today
    return [d.isoformat() for d in {newest, newest + timedelta(days=1), today - timedelta(days=1), today}]


@dg.sensor(
    job=events_job,
    # The daemon evaluates sensors once per 5 s loop; a minimum of exactly 5 s skips a loop whenever
    # it comes back a moment early (ticks 10 s apart, measured), so any smaller one means every loop.
    # A tick is four small listings.
    minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Lists the log folders of the newest days each tick (cost independent of history) and the whole logs "
        f"prefix every {FULL_SWEEP_SECONDS} s (a late file for an older day waits for that sweep). The cursor "
        "keeps one digest of (key, size, version) per day, so a file seen before requests nothing, a late file "
        "re-opens its day, and a burst for one day is one run; a day whose latest events materialization read "
        "exactly those files (the demo's, a backfill's) is not requested."
    ),
)
def new_logs_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    state = json.loads(context.cursor) if context.cursor else {}
    seen: dict[str, str] = state.get("days", {})
    now = time.time()
    sweep = now - state.get("swept_at", 0) >= FULL_SWEEP_SECONDS
    listed = None if sweep else hot_days(seen, datetime.fromtimestamp(now, UTC).date())
    days, strays = list_log_days(lake.store(), listed)
    if strays:
        context.log.warning(f"ignoring {len(strays)} files outside logs/dt=YYYY-MM-DD/hour=HH/*.jsonl.gz: {strays[:5]}")
    valid_days = set(raw_logs.partitions_def.get_partition_keys())
    changed = {day: listing for day, listing in days.items() if seen.get(day) != listing.digest}
    outside = sorted(set(changed) - valid_days)
    if outside:
        context.log.warning(f"log days outside the partitions range, not requested: {outside}")
    to_run = {
        day: listing
        for day, listing in changed.items()
        if day not in outside and staged_digest(context.instance, day) != listing.digest
    }
    selection = _selection(context.instance, len(to_run)) if to_run else STAGE_EVENTS
    requests, observations = [], []
    for day, listing in to_run.items():
        requests.append(
            dg.RunRequest(
                run_key=f"{day}:{listing.digest}",
                partition_key=day,
                asset_selection=selection,
                tags={EVENTS_DAY_TAG: day},
            )
        )
        observations.append(
            dg.AssetObservation(
                asset_key=raw_logs.key,
                partition=day,
                tags={"dagster/data_version": listing.digest},
                metadata={"files": len(listing.files), "bytes": listing.bytes},
            )
        )
    cursor = json.dumps(
        {
            "days": {**seen, **{d: days[d].digest for d in changed}},
            "swept_at": now if sweep else state.get("swept_at", 0),
        },
        sort_keys=True,
    )
    if not requests:
        return dg.SensorResult(skip_reason="no new or changed log files", cursor=cursor)
    return dg.SensorResult(run_requests=requests, asset_events=observations, cursor=cursor)

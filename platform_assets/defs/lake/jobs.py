"""`events_job`: a day of `events` staged from that day's log files (`new_logs_sensor` requests it)."""

import dagster as dg

from platform_assets.defs.executors import step_executor
from platform_assets.defs.keys import ACTIVITY_TILES, EVENTS, EVENTS_QUARANTINE, USER_ACTIVITY

STAGE_EVENTS = [EVENTS, EVENTS_QUARANTINE]
ONE_HOP = [ACTIVITY_TILES, USER_ACTIVITY]  # the day's tile, then its activity rows

# A new file reaches fresh features in one hop: when it changes one day, its run also rebuilds
# that day's user activity (a second sensor hop costs a tick and a ~12 s run launch). Steps run
# in the run's process: a step subprocess cost ~8 s of imports on 2 cores, more than the work.
events_job = dg.define_asset_job(
    "events_job",
    selection=dg.AssetSelection.assets(*STAGE_EVENTS, *ONE_HOP),
    executor_def=step_executor(in_process=True),
    description="Rebuild one day of `events` from that day's log files (and, for one new file, that day's user activity).",
)

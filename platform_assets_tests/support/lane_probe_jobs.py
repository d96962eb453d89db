"""Two one-asset jobs, one per executor the code location wraps, whose asset appends the nice
value of the process that runs it to `$LANE_PROBE_OUT`: the run lane tests run them with
`dagster job execute`, as a run worker would."""

import os

import dagster as dg

from platform_assets.defs.run_lanes import lane_aware


@dg.asset
def niceness_probe() -> None:
    with open(os.environ["LANE_PROBE_OUT"], "a") as out:
        out.write(f"{os.getpid()} {os.getpriority(os.PRIO_PROCESS, 0)}\n")


in_process_job = dg.define_asset_job(
    "in_process_job", [niceness_probe], executor_def=lane_aware(dg.in_process_executor)
)
multiprocess_job = dg.define_asset_job(
    "multiprocess_job", [niceness_probe], executor_def=lane_aware(dg.multi_or_in_process_executor)
)

defs = dg.Definitions(assets=[niceness_probe], jobs=[in_process_job, multiprocess_job])

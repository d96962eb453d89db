"""`shards_sensor`: rewrite (and re-pin) the shards of every training-set day that changed."""

import dagster as dg

from platform_assets.defs.features.assets import TRAINING_SET
from platform_assets.defs.materializations import new_materializations
from platform_assets.defs.shards.assets import shards_job


@dg.sensor(
    job=shards_job,
    minimum_interval_seconds=10,  # a cheap query of the instance: react fast to upstream runs
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches `features/training_set` materializations; one shards run per changed day.",
)
def shards_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    records, cursor = new_materializations(context, TRAINING_SET)
    if not records:
        return dg.SensorResult(skip_reason="no new training_set materializations")
    latest = {r.partition_key: r.storage_id for r in records if r.partition_key}
    requests = [dg.RunRequest(run_key=f"shards:{day}:{sid}", partition_key=day) for day, sid in sorted(latest.items())]
    return dg.SensorResult(run_requests=requests, cursor=cursor)

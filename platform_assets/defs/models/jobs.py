"""`nightly_training_job` and its nightly schedule: the popularity model retrained on the latest pinned shards."""

import dagster as dg

from platform_assets.defs.keys import POPULARITY_MODEL

nightly_training_job = dg.define_asset_job("nightly_training_job", selection=dg.AssetSelection.assets(POPULARITY_MODEL))
nightly_training = dg.ScheduleDefinition(
    name="nightly_training",
    job=nightly_training_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    description="Retrain the popularity model every night on the latest window of pinned shards.",
)

"""`features_job`: features, labels and the training set over a range of days, in one run
(`features_sensor` requests it when days of `events` change)."""

import dagster as dg

from platform_assets.defs.executors import step_executor
from platform_assets.defs.keys import ACTIVITY_TILES, LABELS, LATEST_ACTIVITY, TRAINING_SET, USER_ACTIVITY

features_job = dg.define_asset_job(
    "features_job",
    selection=dg.AssetSelection.assets(ACTIVITY_TILES, USER_ACTIVITY, LATEST_ACTIVITY, LABELS, TRAINING_SET),
    executor_def=step_executor(in_process=True),  # three short steps: process starts cost more than they run
    description="Rebuild features, labels and the training set over a range of days in one run.",
)

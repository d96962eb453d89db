"""The app-database extract: a job to run on demand and a nightly schedule."""

import dagster as dg

from platform_assets.defs.keys import (
    PHOTO_FEATURES,
    PHOTOS,
    PHOTOS_QUARANTINE,
    RAW_LOGS,
    USERS,
    USERS_QUARANTINE,
)

app_db_job = dg.define_asset_job(
    "app_db_job",
    selection=dg.AssetSelection.groups("lake").required_multi_asset_neighbors() - dg.AssetSelection.assets(RAW_LOGS)
    | dg.AssetSelection.assets(USERS, USERS_QUARANTINE, PHOTOS, PHOTOS_QUARANTINE, PHOTO_FEATURES),
    description="Snapshot the app database and rebuild `users`, `photos` and `photo_features`.",
)

app_db_schedule = dg.ScheduleDefinition(
    job=app_db_job,
    cron_schedule="0 1 * * *",
    execution_timezone="UTC",
    description="Nightly snapshot of the app database, before the training run.",
)

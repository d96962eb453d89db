"""The app-database extract: a job to run on demand and a nightly schedule."""

import dagster as dg

app_db_job = dg.define_asset_job(
    "app_db_job",
    selection=dg.AssetSelection.groups("lake").required_multi_asset_neighbors()
    - dg.AssetSelection.assets(["lake", "raw_logs"])
    | dg.AssetSelection.assets(
        ["staging", "users"],
        ["staging", "users_quarantine"],
        ["staging", "photos"],
        ["staging", "photos_quarantine"],
        ["features", "photo_features"],
    ),
    description="Snapshot the app database and rebuild `users`, `photos` and `photo_features`.",
)

app_db_schedule = dg.ScheduleDefinition(
    job=app_db_job,
    cron_schedule="0 1 * * *",
    execution_timezone="UTC",
    description="Nightly snapshot of the app database, before the training run.",
)

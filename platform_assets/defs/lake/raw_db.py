"""Raw app-database snapshots: each table extracted as-is to Parquet in the lake (E+L), a batch at a time."""

import dagster as dg

from platform_assets.defs.keys import RAW_PHOTOS, RAW_USERS
from platform_assets.defs.metadata import table_metadata
from platform_assets.defs.resources import AppDatabaseResource, LakeResource
from platform_assets.defs.retry import IO_RETRY, fail_fast_unless_transient
from platform_assets.lib.lake_layout import raw_snapshot_key
from platform_assets.lib.raw_snapshot import write_snapshot


def _raw_snapshot(table: str, key: dg.AssetKey, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        retry_policy=IO_RETRY,
        key=key,
        group_name="lake",
        kinds={"sql", "parquet"},
        description=description,
    )
    @fail_fast_unless_transient
    def _extract(
        context: dg.AssetExecutionContext, lake: LakeResource, app_db: AppDatabaseResource
    ) -> dg.MaterializeResult:
        store, key = lake.store(), raw_snapshot_key(table)
        written = app_db.extract(table, lambda batches: write_snapshot(store, key, batches))
        context.log.info(f"extracted {written.rows} rows of {table} to {store.uri(key)}")
        return dg.MaterializeResult(
            metadata=table_metadata(written.head, store.uri(key), written.bytes, row_count=written.rows)
        )

    return _extract


raw_users = _raw_snapshot(
    "users", RAW_USERS, "Snapshot of the app database's `users` table, columns as the source has them."
)
raw_photos = _raw_snapshot(
    "photos", RAW_PHOTOS, "Snapshot of the app database's `photos` table, columns as the source has them."
)

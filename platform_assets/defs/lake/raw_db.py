"""Raw app-database snapshots: each table extracted as-is to Parquet in the lake (E+L)."""

import dagster as dg

from platform_assets.defs.metadata import table_metadata
from platform_assets.defs.resources import AppDatabaseResource, LakeResource
from platform_assets.defs.retry import IO_RETRY, transient_retries
from platform_assets.lib.lake_layout import raw_snapshot_key


def _raw_snapshot(table: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        retry_policy=IO_RETRY,
        name=f"raw_{table}",
        key_prefix="lake",
        group_name="lake",
        kinds={"sql", "parquet"},
        description=description,
    )
    @transient_retries
    def _extract(
        context: dg.AssetExecutionContext, lake: LakeResource, app_db: AppDatabaseResource
    ) -> dg.MaterializeResult:
        store = lake.store()
        data = app_db.read_table(table)
        key = raw_snapshot_key(table)
        size = store.write_parquet(key, data)
        context.log.info(f"extracted {data.num_rows} rows of {table} to {store.uri(key)}")
        return dg.MaterializeResult(metadata=table_metadata(data, store.uri(key), size))

    return _extract


raw_users = _raw_snapshot("users", "Snapshot of the app database's `users` table, columns as the source has them.")
raw_photos = _raw_snapshot("photos", "Snapshot of the app database's `photos` table, columns as the source has them.")

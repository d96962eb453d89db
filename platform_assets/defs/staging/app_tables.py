"""`users` and `photos`: the app-database snapshots typed and checked in DuckDB."""

import dagster as dg

from platform_assets.defs.keys import USERS
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.metadata import column_schema, table_metadata
from platform_assets.defs.resources import LakeResource
from platform_assets.defs.retry import IO_RETRY, transient_retries
from platform_assets.lib.lake_layout import raw_snapshot_key, staging_key
from platform_assets.lib.staging.app_tables import DB_QUARANTINE_SCHEMA, PHOTOS_SCHEMA, USERS_SCHEMA, stage


def _staged(table: str, raw: dg.AssetsDefinition, description: str, extra_deps: list) -> dg.AssetsDefinition:
    schema = USERS_SCHEMA if table == "users" else PHOTOS_SCHEMA

    @dg.multi_asset(
        retry_policy=IO_RETRY,
        name=f"stage_{table}",
        specs=[
            dg.AssetSpec(
                ["staging", table],
                deps=[raw, *extra_deps],
                group_name="staging",
                kinds={"duckdb", "parquet"},
                description=description,
                metadata={"dagster/column_schema": column_schema(schema)},
            ),
            dg.AssetSpec(
                ["staging", f"{table}_quarantine"],
                deps=[raw],
                group_name="staging",
                kinds={"duckdb", "parquet"},
                description=f"Rows of the `{table}` snapshot that failed a check, with the reason.",
                metadata={"dagster/column_schema": column_schema(DB_QUARANTINE_SCHEMA)},
            ),
        ],
    )
    @transient_retries
    def _stage(context: dg.AssetExecutionContext, lake: LakeResource):
        store = lake.store()
        users = store.read_parquet(staging_key("users")) if table == "photos" else None
        staged = stage(store.read_parquet(raw_snapshot_key(table)), table, users)
        if staged.missing_optional or staged.unexpected:
            context.log.warning(
                f"schema drift in app-database table {table!r}: missing optional columns "
                f"{staged.missing_optional} (filled with NULL), unexpected columns {staged.unexpected} (ignored)"
            )
        if staged.quarantine.num_rows:
            context.log.warning(f"{staged.quarantine.num_rows} {table} rows quarantined")
        for name, data in ((table, staged.valid), (f"{table}_quarantine", staged.quarantine)):
            key = staging_key(name)
            size = store.write_parquet(key, data)
            metadata = table_metadata(data, store.uri(key), size)
            if name == table:
                metadata |= {
                    "quarantined_rows": staged.quarantine.num_rows,
                    "drift_missing_optional_columns": ", ".join(staged.missing_optional) or "none",
                    "drift_unexpected_columns": ", ".join(staged.unexpected) or "none",
                }
            yield dg.MaterializeResult(asset_key=["staging", name], metadata=metadata)

    return _stage


stage_users = _staged(
    "users", raw_users, "App users, typed and deduplicated by `user_id`; bad rows go to `users_quarantine`.", []
)
stage_photos = _staged(
    "photos",
    raw_photos,
    "Photos, typed, deduplicated by `photo_id` and checked against `users`; bad rows go to `photos_quarantine`.",
    [USERS],
)

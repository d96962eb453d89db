"""`users` and `photos`: the app-database snapshots typed and checked in DuckDB."""

import dagster as dg

from platform_assets.defs.keys import (
    PHOTOS,
    PHOTOS_QUARANTINE,
    RAW_PHOTOS,
    RAW_USERS,
    USERS,
    USERS_QUARANTINE,
)
from platform_assets.defs.metadata import column_schema, table_metadata
from platform_assets.defs.resources import LakeResource
from platform_assets.defs.retry import IO_RETRY, fail_fast_unless_transient
from platform_assets.lib.lake_layout import TABLE_ROW_GROUP_ROWS, raw_snapshot_key, staging_key
from platform_assets.lib.staging.app_tables import CONTRACTS, DB_QUARANTINE_SCHEMA, STAGE_BATCH_ROWS, staging


def _staged(
    table: str,
    raw_asset: dg.AssetKey,
    valid_asset: dg.AssetKey,
    quarantine_asset: dg.AssetKey,
    description: str,
    extra_deps: list,
) -> dg.AssetsDefinition:
    """The staging step of one app-database table: its snapshot `raw_asset` typed and checked
    into `valid_asset`, the rows that fail a check into `quarantine_asset`."""
    schema = CONTRACTS[table].schema

    @dg.multi_asset(
        retry_policy=IO_RETRY,
        name=f"stage_{table}",
        specs=[
            dg.AssetSpec(
                valid_asset,
                deps=[raw_asset, *extra_deps],
                group_name="staging",
                kinds={"duckdb", "parquet"},
                description=description,
                metadata={"dagster/column_schema": column_schema(schema)},
            ),
            dg.AssetSpec(
                quarantine_asset,
                deps=[raw_asset],
                group_name="staging",
                kinds={"duckdb", "parquet"},
                description=f"Rows of the `{table}` snapshot that failed a check, with the reason.",
                metadata={"dagster/column_schema": column_schema(DB_QUARANTINE_SCHEMA)},
            ),
        ],
    )
    @fail_fast_unless_transient
    def _stage(context: dg.AssetExecutionContext, lake: LakeResource):
        store, raw_key = lake.store(), raw_snapshot_key(table)
        valid_key, quarantine_key = staging_key(table), staging_key(f"{table}_quarantine")
        user_ids = (
            store.iter_parquet([staging_key("users")], ["user_id"], STAGE_BATCH_ROWS) if table == "photos" else None
        )
        raw = store.iter_parquet([raw_key], None, STAGE_BATCH_ROWS)
        with staging(store.parquet_schema(raw_key), raw, table, user_ids) as staged:
            valid = store.write_parquet_batches(valid_key, schema, staged.valid, TABLE_ROW_GROUP_ROWS)
        if staged.missing_optional or staged.unexpected:
            context.log.warning(
                f"schema drift in app-database table {table!r}: missing optional columns "
                f"{staged.missing_optional} (filled with NULL), unexpected columns {staged.unexpected} (ignored)"
            )
        if staged.quarantine.num_rows:
            context.log.warning(f"{staged.quarantine.num_rows} {table} rows quarantined")
        yield dg.MaterializeResult(
            asset_key=valid_asset,
            metadata=table_metadata(valid.head, store.uri(valid_key), valid.bytes, row_count=valid.rows)
            | {
                "quarantined_rows": staged.quarantine.num_rows,
                "drift_missing_optional_columns": ", ".join(staged.missing_optional) or "none",
                "drift_unexpected_columns": ", ".join(staged.unexpected) or "none",
            },
        )
        size = store.write_parquet(quarantine_key, staged.quarantine)
        yield dg.MaterializeResult(
            asset_key=quarantine_asset,
            metadata=table_metadata(staged.quarantine, store.uri(quarantine_key), size),
        )

    return _stage


stage_users = _staged(
    "users",
    RAW_USERS,
    USERS,
    USERS_QUARANTINE,
    "App users, typed and deduplicated by `user_id`; bad rows go to `users_quarantine`.",
    [],
)
stage_photos = _staged(
    "photos",
    RAW_PHOTOS,
    PHOTOS,
    PHOTOS_QUARANTINE,
    "Photos, typed, deduplicated by `photo_id` and checked against `users`; bad rows go to `photos_quarantine`.",
    [USERS],
)

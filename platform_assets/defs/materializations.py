"""Reading an asset's new materializations in a sensor, with the storage id as the cursor."""

import dagster as dg


def new_materializations(context: dg.SensorEvaluationContext, key: dg.AssetKey) -> tuple[list, str | None]:
    """Materialization records of `key` after the sensor's cursor, oldest first, and the next cursor."""
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=10_000, ascending=True
    ).records
    return records, (str(records[-1].storage_id) if records else context.cursor)

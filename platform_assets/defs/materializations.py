"""Reading an asset's new materializations in a sensor, with the storage id as the cursor."""

import dagster as dg


def new_materializations(
    context: dg.SensorEvaluationContext, key: dg.AssetKey, since: dg.AssetKey | None = None
) -> tuple[list, str | None]:
    """Materialization records of `key` after the sensor's cursor, oldest first, and the next
    cursor. With no cursor yet (a first start), those after the latest materialization of
    `since`, the asset they feed: what was built before it is not new to it."""
    after = int(context.cursor) if context.cursor else latest_storage_id(context.instance, since) if since else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=10_000, ascending=True
    ).records
    if records:
        return records, str(records[-1].storage_id)
    return records, context.cursor or (str(after) if after is not None else None)


def latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> int | None:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
    return records[0].storage_id if records else None

"""Every query of the instance's event log, in one place: what the sensors, assets and demo read
back of what earlier runs recorded (materializations, their partitions and metadata, a run's log).

Each function is one question a caller asks, named for it, so a reader sees which decisions rest
on the event log and a change of Dagster's query API is made here only."""

from collections.abc import Sequence

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
    """The storage id of `key`'s latest materialization: a sensor's starting cursor, so a first
    start reads only what came after it."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
    return records[0].storage_id if records else None


def latest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> dg.EventLogRecord | None:
    """The record of the latest materialization of one partition of `key`, whoever ran it (a
    sensor run, the demo, the CLI, a backfill), or None: its metadata says what that write read
    (the log files' digest, when the state was read, the DVC hash) and its run id which run it was."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records else None


def all_materialized(instance: dg.DagsterInstance, keys: list[dg.AssetKey]) -> bool:
    """Whether every one of `keys` has been materialized at least once: a step that reads them
    can be requested without failing on a missing input."""
    return all(instance.get_latest_materialization_event(key) for key in keys)


def materialized_partitions(instance: dg.DagsterInstance, key: dg.AssetKey) -> set[str]:
    """The partitions of `key` materialized at least once: the days that exist to read or rebuild."""
    return set(instance.get_materialized_partitions(key))


def materialized_since(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str], since: float
) -> list[str]:
    """The partitions among `partitions` of `key` materialized after the timestamp `since`,
    sorted: a step that read them at `since` and finds any here read data another run has since
    rewritten, and reads again."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions, after_timestamp=since), limit=len(partitions)
    )
    return sorted({r.partition_key for r in records.records if r.partition_key})


def run_log(instance: dg.DagsterInstance, run_id: str) -> Sequence[dg.EventLogEntry]:
    """Every entry a run logged, oldest first: the demo runs jobs in process with a quiet console
    and writes their full logs to a file for when a run fails."""
    return instance.all_logs(run_id)

"""`features_sensor`: when days of `events` change, rebuild the features whose windows reach them."""

from datetime import date, timedelta

import dagster as dg

from platform_assets.defs.features.jobs import features_job
from platform_assets.defs.keys import EVENTS, TRAINING_SET
from platform_assets.defs.materializations import materialized_partitions, new_materializations
from platform_assets.defs.partitions import range_tags
from platform_assets.defs.run_lanes import BACKGROUND
from platform_assets.lib.features.user_activity import LOOKBACK_DAYS


def affected_range(changed: set[str], materialized: set[str]) -> tuple[str, str] | None:
    """Days to rebuild when `changed` event days were rewritten: labels of the day before each
    (their 24 h window reaches in), and every day whose 30-day activity window (31 for the
    training set's as-of lookback) reaches it, up to the last day with events."""
    if not changed or not materialized:
        return None
    first = date.fromisoformat(min(changed)) - timedelta(days=1)
    last_with_events = date.fromisoformat(max(materialized))
    last = min(date.fromisoformat(max(changed)) + timedelta(days=LOOKBACK_DAYS + 1), last_with_events)
    first = max(first, date.fromisoformat(min(materialized)))
    return (first.isoformat(), last.isoformat()) if first <= last else None


@dg.sensor(
    job=features_job,
    minimum_interval_seconds=10,  # a cheap query of the instance: react fast to upstream runs
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches `staging/events` materializations and launches one features run over the affected days "
    "(on a first start, only those after the latest training set: what `make demo` built is not rebuilt).",
)
def features_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    records, cursor = new_materializations(context, EVENTS, since=TRAINING_SET)  # first start: after `make demo`
    if not records:
        return dg.SensorResult(skip_reason="no new events materializations")
    changed = {r.partition_key for r in records if r.partition_key}
    materialized = materialized_partitions(context.instance, EVENTS)
    span = affected_range(changed, materialized)
    if span is None:
        return dg.SensorResult(skip_reason="no days to rebuild", cursor=cursor)
    request = dg.RunRequest(run_key=f"features:{cursor}", tags={**range_tags(*span), **BACKGROUND})
    return dg.SensorResult(run_requests=[request], cursor=cursor)

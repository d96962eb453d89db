"""The cluster's workers in the UI (cluster deployment only): the `cluster_workers` sensor asks the live
workers every minute which queues they consume. Its tick is skipped with a line naming every
queue's workers while each queue is served, and fails (red in the UI's Sensors and Overview
pages) naming the queue nobody serves, long before a step on it would time out."""

import dagster as dg

from platform_assets.defs.executors import QUEUES
from platform_assets.defs.resources import deployment
from platform_assets.lib.cluster.health import queue_health

HEALTH_SENSOR = "cluster_workers"
HEALTH_EVERY_S = 60


def check_workers() -> str:
    """The health line, or an error naming the unserved queues."""
    from platform_assets.defs.celery_steps import celery_app, live_queues  # Celery: on the cluster only

    health = queue_health(live_queues(celery_app()), QUEUES)
    if not health.healthy:
        raise RuntimeError(health.summary())
    return health.summary()


if deployment() == "cluster":

    @dg.sensor(
        name=HEALTH_SENSOR,
        minimum_interval_seconds=HEALTH_EVERY_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Which live Celery worker serves each queue; the tick fails while a queue has none.",
    )
    def cluster_workers(_context: dg.SensorEvaluationContext) -> dg.SkipReason:
        return dg.SkipReason(check_workers())

"""Where a job's steps run: in the run's own process or its subprocesses (local and production),
or on Celery workers that share nothing but the broker, PostgreSQL, S3 and the registry's
remotes (`PLATFORM_ASSETS_DEPLOYMENT=cluster`, deploy/cluster/README.md).

On the cluster every step is a Celery task on a queue: steps that want a GPU (torch) go to
`gpu`, the rest to `cpu`; a worker serves the queues it is started with. A step's message is
acknowledged only when the step has finished, so a worker lost mid-step (its process killed,
its host gone) leaves the message to the broker, which delivers it again to a live worker."""

import dagster as dg

from platform_assets.defs.run_lanes import lane_aware
from platform_assets.settings import BROKER_URL, broker_url, deployment, queue_wait_seconds, redelivery_seconds

QUEUE_TAG = "dagster-celery/queue"  # dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG, without importing Celery locally
CPU_QUEUE, GPU_QUEUE = "cpu", "gpu"
GPU_STEP = {QUEUE_TAG: GPU_QUEUE}  # op_tags of the steps that run torch
QUEUES = (CPU_QUEUE, GPU_QUEUE)


def celery_settings() -> dict:
    """The executor's configuration; the workers build their app from the same (cluster_worker.py)."""
    url, redelivery = broker_url(), redelivery_seconds()
    return {
        "broker": url,
        "backend": url,
        "config_source": {
            "task_default_queue": CPU_QUEUE,
            "task_acks_late": True,  # acknowledged when the step is done, not when it is received
            "task_reject_on_worker_lost": True,  # a worker process killed mid-step: back to the queue
            "worker_prefetch_multiplier": 1,  # a worker holds no step it has not started
            "broker_connection_retry_on_startup": True,
            # Live workers look for steps whose worker was lost every 10 s (kombu's default: 100 s).
            "broker_transport_options": {
                "visibility_timeout": redelivery,
                "unacked_restore_interval": 10,
                "unacked_restore_throttle": 1,
            },
            "result_backend_transport_options": {"visibility_timeout": redelivery},
            "result_expires": 7 * 24 * 3600,
        },
    }


def reachable_broker(url: str) -> None:
    """Fail at once, naming the setting, when no broker answers at `url` (Celery would retry
    for minutes before saying anything)."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5).ping()
    except redis.RedisError as exc:
        raise ValueError(
            f"{BROKER_URL.name}={url!r}: no broker answers there ({exc}); start the broker or "
            "fix the setting (deploy/cluster/README.md)"
        ) from exc


@dg.executor(name="celery", requirements=dg.multiple_process_executor_requirements())
def celery_workers(_init_context) -> dg.Executor:
    """Each step a Celery task on its queue, run by whichever worker serves it (dagster-celery);
    a step whose queue no live worker serves for `queue_wait_seconds()` fails its run."""
    from dagster._core.execution.retries import RetryMode

    from platform_assets.defs.celery_steps import WatchedCeleryExecutor

    settings = celery_settings()
    reachable_broker(settings["broker"])
    return WatchedCeleryExecutor(queue_wait_seconds(), retries=RetryMode.ENABLED, **settings)


def step_executor(in_process: bool = False) -> dg.ExecutorDefinition:
    """The executor of a job: `in_process` for jobs of short steps whose process starts would cost
    more than they run, else a process per step; on the cluster, always the Celery workers."""
    if deployment() == "cluster":
        celery_settings(), queue_wait_seconds()  # a bad setting fails when the definitions load
        return lane_aware(celery_workers)
    return lane_aware(dg.in_process_executor if in_process else dg.multi_or_in_process_executor)

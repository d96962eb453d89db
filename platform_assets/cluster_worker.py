"""The Celery app a cluster worker runs (`platform-assets worker`): dagster-celery's step task,
built from the same settings as the executor that sends the steps (defs/executors.py), so the
two agree on the broker, the result backend and the redelivery of a lost worker's step."""

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from platform_assets.defs.executors import celery_settings

app = make_app(CeleryExecutor.for_cli(**celery_settings()).app_args())
execute_plan = create_task(app)

"""dagster-celery's executor, with a bound on waiting for a queue nobody serves.

dagster-celery submits a step and polls its result until it is ready: when no live worker
serves the step's queue (none started, or the only one died), the run waits for ever. Here
each pending step's result also asks, every `CHECK_EVERY_S`, whether any live worker consumes
its queue (Celery's remote control); after `wait_s` without one the step fails, naming the
queue. Imported only on the cluster (Celery is not loaded elsewhere)."""

from __future__ import annotations

import time
from collections.abc import Callable

from celery import Celery
from celery.result import AsyncResult
from dagster_celery.core_execution_loop import core_celery_execution_loop
from dagster_celery.executor import CeleryExecutor, _submit_task
from dagster_celery.make_app import make_app

from platform_assets.defs.executors import celery_settings

CHECK_EVERY_S = 15.0  # between two asks of the workers which queues they serve
ANSWER_S = 1.0  # how long an ask waits for the workers' answers


def celery_app() -> Celery:
    """The Celery app of the cluster's settings: the same for the workers and whoever asks them."""
    return make_app(CeleryExecutor.for_cli(**celery_settings()).app_args())


def live_queues(app: Celery) -> dict[str, list[str]]:
    """Each live worker's name and the queues it consumes, as it answers (Celery's remote control)."""
    answers = app.control.inspect(timeout=ANSWER_S).active_queues() or {}
    return {worker: [q["name"] for q in queues] for worker, queues in answers.items()}


class QueueWatch:
    """Which queues live workers consume, asked at most every `CHECK_EVERY_S`."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._asked = -CHECK_EVERY_S
        self._served: set[str] = set()

    def served(self, queue: str) -> bool:
        if time.monotonic() - self._asked >= CHECK_EVERY_S:
            self._served = {q for queues in live_queues(self._app).values() for q in queues}
            self._asked = time.monotonic()
        return queue in self._served


class WatchedResult:
    """A step's Celery result that turns ready, with an error naming the queue, once no live
    worker has served that queue for `wait_s` seconds."""

    def __init__(self, result: AsyncResult, queue: str, served: Callable[[str], bool], wait_s: int) -> None:
        self._result, self._queue, self._served, self._wait_s = result, queue, served, wait_s
        self._last_served = time.monotonic()

    def ready(self) -> bool:
        if self._result.ready():
            return True
        if self._served(self._queue):
            self._last_served = time.monotonic()
        return time.monotonic() - self._last_served > self._wait_s

    def get(self):
        if self._result.ready():
            return self._result.get()
        self._result.revoke()
        raise RuntimeError(
            f"no live worker has served the {self._queue!r} queue for {self._wait_s} s: start one "
            f"(`platform-assets worker --queues {self._queue}`) and re-execute the run; "
            "PLATFORM_ASSETS_QUEUE_WAIT_S sets this wait"
        )

    def revoke(self) -> None:
        self._result.revoke()


class WatchedCeleryExecutor(CeleryExecutor):
    def __init__(self, queue_wait_s: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.queue_wait_s = queue_wait_s
        self._watch: QueueWatch | None = None

    def execute(self, plan_context, execution_plan):
        return core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=self._submit)

    def _submit(self, app: Celery, plan_context, step, queue: str, priority: int, known_state) -> WatchedResult:
        self._watch = self._watch or QueueWatch(app)
        result = _submit_task(app, plan_context, step, queue, priority, known_state)
        return WatchedResult(result, queue, self._watch.served, self.queue_wait_s)

"""Run lanes: tags the instance's run queue limits (`tag_concurrency_limits` in
deploy/*/dagster.yaml), and the CPU priority a lane's runs take.

Follow-on work (the ranged features rebuild a day's new events set off, the shards the
rewritten training days set off) runs in the background lane, one run at a time and at a lower
CPU priority: on one host a new log file's events run then always finds a queue slot, and takes
the cores first when the follow-on run of the file before is still working."""

from collections.abc import Iterator

import dagster as dg

from platform_assets.lib.cpu import lower_cpu_priority
from platform_assets.settings import DEFAULT_BACKGROUND_NICE as DEFAULT_BACKGROUND_NICE  # re-exported
from platform_assets.settings import background_nice

LANE_TAG = "platform_assets/lane"
BACKGROUND = {LANE_TAG: "background"}


class _LaneExecutor(dg.Executor):
    """The inner executor, after lowering a background-lane run's priority: the run process's
    threads, and through them every step process it starts."""

    def __init__(self, inner: dg.Executor, niceness: int):
        self._inner = inner
        self._niceness = niceness

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        if self._niceness and plan_context.dagster_run.tags.get(LANE_TAG) == BACKGROUND[LANE_TAG]:
            niceness = lower_cpu_priority(self._niceness)
            plan_context.log.info(f"background lane: this run's processes run at nice {niceness}")
        return self._inner.execute(plan_context, execution_plan)

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def __getattr__(self, name: str):
        """The rest of the inner executor's interface (the Celery executor's `app_args`)."""
        return getattr(self.__dict__["_inner"], name)


class LaneAwareExecutorDefinition(dg.ExecutorDefinition):
    """An executor definition whose runs in the background lane run at `background_nice()`."""


def lane_aware(inner: dg.ExecutorDefinition) -> LaneAwareExecutorDefinition:
    """`inner`, same name and config, with background-lane runs at a lower CPU priority."""
    create = inner.executor_creation_fn
    assert create is not None, f"executor {inner.name} has no creation function"
    niceness = background_nice()
    return LaneAwareExecutorDefinition(
        name=inner.name,
        config_schema=inner.config_schema,
        requirements=inner.get_requirements,
        executor_creation_fn=lambda init_context: _LaneExecutor(create(init_context), niceness),
        description=f"{inner.description or inner.name}; background-lane runs at nice {niceness}.",
    )

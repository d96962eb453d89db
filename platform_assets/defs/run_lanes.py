"""Run lanes: tags the instance's run queue limits (`tag_concurrency_limits` in
deploy/*/dagster.yaml), and the CPU priority a lane's runs take.

Follow-on work (the ranged features rebuild a day's new events set off, the shards the
rewritten training days set off) runs in the background lane, one run at a time and at a lower
CPU priority: on one host a new log file's events run then always finds a queue slot, and takes
the cores first when the follow-on run of the file before is still working."""

from collections.abc import Iterator

import dagster as dg

from platform_assets.lib.cpu_priority import lower_cpu_priority

LANE_TAG = "platform_assets/lane"
BACKGROUND = {LANE_TAG: "background"}
# Linux's CFS gives a nice-10 thread about a tenth of a nice-0 one's share of a busy core; an
# idle core it still takes whole, so background runs lose nothing when nothing else runs.
BACKGROUND_NICE = 10


class _LaneExecutor(dg.Executor):
    """The inner executor, after lowering a background-lane run's priority: the run process's
    threads, and through them every step process it starts."""

    def __init__(self, inner: dg.Executor):
        self._inner = inner

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        if plan_context.dagster_run.tags.get(LANE_TAG) == BACKGROUND[LANE_TAG]:
            niceness = lower_cpu_priority(BACKGROUND_NICE)
            plan_context.log.info(f"background lane: this run's processes run at nice {niceness}")
        return self._inner.execute(plan_context, execution_plan)

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config


class LaneAwareExecutorDefinition(dg.ExecutorDefinition):
    """An executor definition whose runs in the background lane run at `BACKGROUND_NICE`."""


def lane_aware(inner: dg.ExecutorDefinition) -> LaneAwareExecutorDefinition:
    """`inner`, same name and config, with background-lane runs at a lower CPU priority."""
    create = inner.executor_creation_fn
    assert create is not None, f"executor {inner.name} has no creation function"
    return LaneAwareExecutorDefinition(
        name=inner.name,
        config_schema=inner.config_schema,
        requirements=inner.get_requirements,
        executor_creation_fn=lambda init_context: _LaneExecutor(create(init_context)),
        description=f"{inner.description or inner.name}; background-lane runs at nice {BACKGROUND_NICE}.",
    )

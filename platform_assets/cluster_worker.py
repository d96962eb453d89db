"""The Celery app a cluster worker runs (`platform-assets worker`), built from the same settings
as the executor that sends the steps (defs/executors.py), so that the two agree on the broker,
the result backend and the redelivery of a lost worker's step.

Its task is dagster-celery's `execute_plan` with one change: the step runs in a process of its
own, as Dagster's multiprocess executor runs it, forked from a forkserver that imported Dagster
and the definitions once (a step starts in a fraction of a second, not the seconds its imports
take). The worker's threads keep answering the broker and the executor's "who serves this
queue?" while a step runs; a step may start process pools of its own (image decoding), which a
Celery prefork child, a daemonic process, may not; its memory goes back when it ends; and a
step whose run has already finished (a message left in a queue by a run that failed waiting
for a worker) is skipped. kill -9 of the worker's process group takes the step with it, and
the broker delivers the step again."""

import multiprocessing
from multiprocessing.connection import Connection

from dagster import DagsterInstance
from dagster._core.events import EngineEventData
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import serialize_value, unpack_value
from dagster_celery.config import TASK_EXECUTE_PLAN_NAME
from dagster_celery.core_execution_loop import DELEGATE_MARKER
from dagster_celery.executor import CeleryExecutor

from platform_assets.defs.celery_steps import celery_app

app = celery_app()
STEPS = multiprocessing.get_context("forkserver")
STEPS.set_forkserver_preload(["platform_assets.step_preload"])


def _step_process(args: ExecuteStepArgs, events: Connection) -> None:
    """What `dagster api execute_step` does, the events sent back serialized."""
    from dagster._cli.api import _execute_step_command_body
    from dagster._cli.utils import get_instance_for_cli

    with get_instance_for_cli(instance_ref=args.instance_ref) as instance:
        run = instance.get_run_by_id(args.run_id)
        events.send([serialize_value(event) for event in _execute_step_command_body(args, instance, run)])


@app.task(bind=True, name=TASK_EXECUTE_PLAN_NAME)
def execute_plan(self, execute_step_args_packed: dict, executable_dict: dict) -> list[str]:
    """Run one step in a child process; return its events, serialized, as dagster-celery's does.
    `executable_dict` (the sender's job pointer) goes unused: the step process rebuilds the job
    from the run's own origin, as `dagster api execute_step` does."""
    args = unpack_value(execute_step_args_packed, as_type=ExecuteStepArgs)
    steps = ", ".join(args.step_keys_to_execute or [])
    with DagsterInstance.from_ref(args.instance_ref) as instance:
        started = instance.report_engine_event(
            f"Executing steps {steps} in celery worker",
            instance.get_run_by_id(args.run_id),
            EngineEventData({"step_keys": steps, "Celery worker": self.request.hostname}, marker_end=DELEGATE_MARKER),
            CeleryExecutor,
            step_key=steps,
        )
    receive, send = STEPS.Pipe(duplex=False)
    step = STEPS.Process(target=_step_process, args=(args, send), name=f"step {steps}")
    step.start()
    send.close()
    try:
        events = receive.recv()
    except EOFError:  # the process died before sending its events
        events = []
    step.join()
    if step.exitcode and not events:
        raise RuntimeError(f"step {steps} of run {args.run_id}: its process exited {step.exitcode}")
    return [serialize_value(started), *events]

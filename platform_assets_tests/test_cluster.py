"""The cluster deployment for real: a Redis broker, Celery workers that each see a disk of their
own (cluster_stack.py), PostgreSQL, the S3 API server and the registry's remotes on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from platform_assets.defs.cluster_workers import HEALTH_SENSOR
from platform_assets.defs.executors import GPU_QUEUE, QUEUE_TAG
from platform_assets.defs.partitions import range_tags
from platform_assets.lib.simulator import LakeScale
from platform_assets_tests.support.cluster_stack import (
    backfill_days,
    cluster_stack,
    daemon_and_ui,
    lake_digest,
    registry_refs,
    step_story,
    wait_for_backfill,
    workers_of,
)
from platform_assets_tests.support.helpers import ROOT, environment, scale_days
from platform_assets_tests.support.production_stack import FAST_EMBEDDINGS, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCALE = LakeScale(users=30, photos=48, days=3, events_per_day=800, files_per_hour=1, defect_rate=0.01, seed=5)
DAYS = scale_days(SCALE)
ENCODER = {
    "ops": {"embeddings__image_encoder": {"config": {"epochs": 12, "batch_size": 32}}}
}  # a step of a few seconds
TRAINABLE = DAYS[:2]  # the last day's events close the second day's label windows
GPU_STEPS = {"embeddings__image_encoder", "embeddings__image_embeddings", "embeddings__title_embeddings"}
GPU_STEPS |= {"shards__training_shards", "models__popularity_model"}


def execute_on_one_host(job: str, **kwargs) -> dict[str, str]:
    """Run `job` in this process, every step in it (no worker): the one-host baseline."""
    from platform_assets.definitions import defs

    with dg.DagsterInstance.get() as instance:
        assert defs().resolve_job_def(job).execute_in_process(instance=instance, **kwargs).success
    return {}


def execute(job: str, expect_success: bool = True, **kwargs):
    """Run `job` from the test process (the orchestrator); returns the worker that ran each step
    (the last to start it), or with `expect_success=False` the failed run's error messages."""
    recon = ReconstructableRepository.for_module("platform_assets.definitions", "defs", str(ROOT))
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(recon.get_reconstructable_job(job), instance, raise_on_error=False, **kwargs)
        failures = [e for e in result.all_events if e.is_failure]
        errors = "\n".join(f"{e.message} {getattr(e.event_specific_data, 'error', None)}" for e in failures)
        assert result.success == expect_success, errors
        if not expect_success:
            return errors
        return {
            e.step_key: e.event_specific_data.metadata["Celery worker"].value
            for e in result.all_events
            if e.is_engine_event and "Celery worker" in (e.event_specific_data.metadata or {})
        }


def the_graph(run=execute) -> dict[str, str]:
    """Every daily job over the lake, as the sensors and schedules launch them; the worker of each step."""
    ran = run("app_db_job")
    for day in DAYS:
        ran |= {f"{day} {k}": w for k, w in run("events_job", tags={"dagster/partition": day}).items()}
    ran |= run("features_job", tags=range_tags(DAYS[0], DAYS[-1]))
    ran |= run("image_encoder_job", run_config=FAST_EMBEDDINGS["image_encoder_job"])
    ran |= run("embeddings_job", run_config=FAST_EMBEDDINGS["embeddings_job"], tags=range_tags(*TRAINABLE))
    for day in TRAINABLE:
        ran |= {f"{day} {k}": w for k, w in run("shards_job", tags={"dagster/partition": day}).items()}
    return ran | run("nightly_training_job")


def test_the_cluster_runs_the_graph_as_one_host_does_and_outlives_a_lost_worker(tmp_path) -> None:
    """One stack, in the order a cluster meets them:

    - a run whose queue no live worker serves fails after PLATFORM_ASSETS_QUEUE_WAIT_S, naming it;
    - the whole graph runs with its steps spread over two cpu workers and torch steps on the gpu
      worker only, its days (events to pinned shards) as one asset backfill that the UI's API
      launches and the daemon runs; shards pinned in one worker's registry clone are trained on wherever training
      runs (the remotes carry them); the same graph run again on one host changes no byte of
      the lake and adds no registry commit or tag;
    - kill -9 of a worker (all its processes) mid-step: the broker delivers the step again, to
      another worker, and the run succeeds."""
    redelivery = {"PLATFORM_ASSETS_STEP_REDELIVERY_S": "30"}  # longer than any step here, even on a loaded host
    with environment(redelivery), cluster_stack(tmp_path, SCALE) as cluster:
        cluster.start_worker("cpu-a", "cpu")
        with environment({"PLATFORM_ASSETS_QUEUE_WAIT_S": "5"}):
            started = time.monotonic()
            failed = execute("image_encoder_job", run_config=ENCODER, expect_success=False)
        assert "no live worker has served the 'gpu' queue for 5 s" in failed, failed
        assert time.monotonic() - started < 60

        cluster.start_worker("cpu-b", "cpu")
        cluster.start_worker("gpu-a", GPU_QUEUE)
        ran = execute("app_db_job") | execute("image_encoder_job", run_config=FAST_EMBEDDINGS["image_encoder_job"])
        with daemon_and_ui(tmp_path) as ui, dg.DagsterInstance.get() as instance:
            backfill = ui.launch_backfill(
                backfill_days(DAYS, TRAINABLE)
            )  # the daemon runs it, its runs' steps go to the workers
            runs = wait_for_backfill(instance, backfill, 600)
            ran |= workers_of(instance, runs)
            health = ui.finished_tick(HEALTH_SENSOR)  # what the UI's Sensors page shows
        assert health["status"] == "SKIPPED", health
        assert re.fullmatch(r"every queue served \(cpu: cpu-a@\S+, cpu-b@\S+; gpu: gpu-a@\S+\)", health["skipReason"])
        ran |= execute("nightly_training_job")
        names = {step: worker.split("@")[0] for step, worker in ran.items()}
        assert {w for s, w in names.items() if s.split(" ")[-1] in GPU_STEPS} == {"gpu-a"}, names
        assert {w for s, w in names.items() if s.split(" ")[-1] not in GPU_STEPS} == {"cpu-a", "cpu-b"}, names
        lake, refs = lake_digest(cluster.served.lake), registry_refs(cluster)
        assert "refs/tags/popularity-model/" in refs
        one_host = subprocess.run(  # a process of production's settings: no broker, no worker
            [sys.executable, "-c", "from platform_assets_tests.test_cluster import *; the_graph(execute_on_one_host)"],
            env={**os.environ, "PLATFORM_ASSETS_DEPLOYMENT": "production"},
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert one_host.returncode == 0, one_host.stderr[-3000:]
        assert lake_digest(cluster.served.lake) == lake
        assert registry_refs(cluster) == refs  # same DVC hashes, same model id: nothing new to commit or tag

        logged = len(cluster.log("gpu-a"))
        with ThreadPoolExecutor(1) as pool:
            run = pool.submit(execute, "image_encoder_job", run_config=ENCODER)
            started = "embeddings__image_encoder - STEP_START"
            wait_for(lambda: started in cluster.log("gpu-a")[logged:], 120, "the encoder's step on gpu-a", 0.2)
            cluster.kill_worker("gpu-a")
            cluster.start_worker("gpu-b", GPU_QUEUE)
            ran = run.result(timeout=300)
        assert ran["embeddings__image_encoder"].startswith("gpu-b@")  # the last worker to start the step
        with dg.DagsterInstance.get() as instance:
            (killed,) = instance.get_runs(dg.RunsFilter(job_name="image_encoder_job"), limit=1)
            story = step_story(instance, killed.run_id, "embeddings__image_encoder")
        logs = f"gpu-a: {cluster.log('gpu-a')[logged:][-3000:]}\ngpu-b: {cluster.log('gpu-b')[-3000:]}"
        # the kill landed in the step, not after it; the step ran again, whole, on gpu-b
        until_success = story[: story.index("STEP_SUCCESS") + 1] if "STEP_SUCCESS" in story else story
        assert until_success == [
            *["on gpu-a", "STEP_START"],
            *["on gpu-b", "STEP_START", "STEP_SUCCESS"],
        ], f"{story}\n{logs}"


def test_the_queue_tag_is_dagster_celerys() -> None:
    from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

    assert QUEUE_TAG == DAGSTER_CELERY_QUEUE_TAG

"""The cluster deployment for real: a Redis broker, Celery workers that each see a disk of their
own (cluster_stack.py), PostgreSQL, the S3 API server and the registry's remotes on loopback."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from platform_assets.defs.executors import GPU_QUEUE, QUEUE_TAG
from platform_assets.defs.partitions import range_tags
from platform_assets.lib.simulator import LakeScale
from platform_assets_tests.cluster_stack import Cluster, cluster_stack
from platform_assets_tests.helpers import scale_days
from platform_assets_tests.production_stack import FAST_EMBEDDINGS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SCALE = LakeScale(users=30, photos=48, days=3, events_per_day=800, files_per_hour=1, defect_rate=0.01, seed=5)
DAYS = scale_days(SCALE)
TRAINABLE = DAYS[:2]  # the last day's events close the second day's label windows
GPU_STEPS = {"embeddings__image_encoder", "embeddings__image_embeddings", "embeddings__title_embeddings"}
GPU_STEPS |= {"shards__training_shards", "models__popularity_model"}


def execute(job: str, **kwargs) -> dict[str, str]:
    """Run `job` from the test process (the orchestrator); returns the worker that ran each step."""
    recon = ReconstructableRepository.for_module("platform_assets.definitions", "defs", str(ROOT))
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(recon.get_reconstructable_job(job), instance, raise_on_error=False, **kwargs)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        return {
            e.step_key: e.event_specific_data.metadata["Celery worker"].value
            for e in result.all_events
            if e.is_engine_event and "Celery worker" in (e.event_specific_data.metadata or {})
        }


def the_graph() -> dict[str, str]:
    """Every daily job over the lake, as the sensors and schedules launch them; the worker of each step."""
    ran = execute("app_db_job")
    for day in DAYS:
        ran |= {f"{day} {k}": w for k, w in execute("events_job", tags={"dagster/partition": day}).items()}
    ran |= execute("features_job", tags=range_tags(DAYS[0], DAYS[-1]))
    ran |= execute("image_encoder_job", run_config=FAST_EMBEDDINGS["image_encoder_job"])
    ran |= execute("embeddings_job", run_config=FAST_EMBEDDINGS["embeddings_job"], tags=range_tags(*TRAINABLE))
    for day in TRAINABLE:
        ran |= {f"{day} {k}": w for k, w in execute("shards_job", tags={"dagster/partition": day}).items()}
    return ran | execute("nightly_training_job")


def registry_refs(cluster: Cluster) -> str:
    """The registry's branches and tags as its git remote holds them."""
    remote = cluster.served.env["PLATFORM_ASSETS_REGISTRY_GIT_REMOTE"]
    return subprocess.run(["git", "ls-remote", remote], capture_output=True, text=True, check=True).stdout


def lake_digest(cluster: Cluster) -> dict[str, str]:
    lake = cluster.served.lake
    files = [f.key for prefix in ("staging", "features", "embeddings") for f in lake.list_files(prefix)]
    return {key: hashlib.sha256(lake.read_bytes(key)).hexdigest() for key in files}


def test_the_graph_runs_on_two_workers_that_share_no_disk_and_writes_what_one_host_writes(tmp_path) -> None:
    """Steps spread over two workers, torch steps on the `gpu` queue only; shards pinned on one
    worker's registry clone are trained on wherever training runs (the remotes carry them); and
    the same graph run again on one host changes no byte of the lake and adds no registry commit."""
    with cluster_stack(tmp_path, SCALE) as cluster:
        cluster.start_worker("cpu-a", "cpu")
        cluster.start_worker("cpu-b", "cpu")
        cluster.start_worker("gpu-a", GPU_QUEUE)
        ran = the_graph()
        names = {step: worker.split("@")[0] for step, worker in ran.items()}
        assert {w for s, w in names.items() if s.split(" ")[-1] in GPU_STEPS} == {"gpu-a"}, names
        assert {w for s, w in names.items() if s.split(" ")[-1] not in GPU_STEPS} == {"cpu-a", "cpu-b"}, names
        lake, refs = lake_digest(cluster), registry_refs(cluster)
        assert "refs/tags/popularity-model/" in refs

        one_host = subprocess.run(  # a process of its own: the jobs' executors are bound when definitions load
            [sys.executable, "-c", "from platform_assets_tests.test_cluster import the_graph; print(the_graph())"],
            env={**os.environ, "PLATFORM_ASSETS_DEPLOYMENT": "production"},
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert one_host.returncode == 0 and one_host.stdout.splitlines()[-1] == "{}", one_host.stderr[-3000:]
        assert lake_digest(cluster) == lake
        assert registry_refs(cluster) == refs  # same DVC hashes, same model id: nothing new to commit or tag


def test_the_queue_tag_is_dagster_celerys() -> None:
    from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

    assert QUEUE_TAG == DAGSTER_CELERY_QUEUE_TAG

"""The cluster deployment on one machine: the production servers (PostgreSQL, the S3 API server,
the registry's bare git remote), a Redis broker, and Celery workers that each see a disk of
their own.

Each worker runs in a mount namespace of its own (`unshare --mount`, as root) with empty tmpfs
mounts over the test's directory, over its own host directory and over /var/tmp: it cannot see
the orchestrator's Dagster home or the test's files, and what it writes (its registry clone,
temporary files, DVC's site cache) no other process can read. The registry's git remote is
served by `git daemon` on loopback. What crosses between hosts goes through the broker,
PostgreSQL, S3 and the registry's remotes, as it must on separate machines."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import requests

from platform_assets.defs import keys
from platform_assets.defs.cluster_workers import HEALTH_SENSOR
from platform_assets.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.simulator import LakeScale
from platform_assets_tests.support.helpers import ROOT, environment
from platform_assets_tests.support.production_stack import (
    Served,
    free_port,
    served_environment,
    start_webserver,
    stop_process_group,
    wait_for,
)
from platform_assets_tests.support.redis_server import redis_server


@dataclass
class Cluster:
    served: Served
    broker: str
    tmp: Path  # the orchestrator's files: hidden from the workers
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    hosts: list[Path] = field(default_factory=list)

    def start_worker(self, name: str, queues: str = "cpu,gpu") -> subprocess.Popen:
        """`platform-assets worker` as a host of its own, named `name@<hostname>`."""
        host = Path(tempfile.mkdtemp(prefix=f"platform-assets-{name}-"))  # empty: the worker's tmpfs goes over it
        self.hosts.append(host)
        env = {
            **os.environ,
            "HOME": f"{host}/home",
            "TMPDIR": f"{host}/tmp",
            "DAGSTER_HOME": f"{host}/dagster_home",
            "PLATFORM_ASSETS_WORKSPACE": f"{host}/registry",
        }
        yaml = (Path(self.served.env["DAGSTER_HOME"]) / "dagster.yaml").read_text()
        setup = (
            f"mount -t tmpfs tmpfs {self.tmp} && mount -t tmpfs tmpfs {host} && mount -t tmpfs tmpfs /var/tmp && "
            f"mkdir -p {host}/home {host}/tmp {host}/dagster_home && cd {host} && "
            f'printf "%s" "$DAGSTER_YAML" > {host}/dagster_home/dagster.yaml && exec "$@"'
        )
        command = [str(Path(sys.executable).with_name("platform-assets")), "worker", "--queues", queues]
        with open(self.tmp / f"worker-{name}.log", "ab") as log:
            proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", setup, "sh", *command]
                + ["--name", f"{name}@%h"],
                env={**env, "DAGSTER_YAML": yaml},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.workers[name] = proc
        return proc

    def kill_worker(self, name: str) -> None:
        """SIGKILL to the worker and every process it started, as when its host dies."""
        os.killpg(self.workers.pop(name).pid, signal.SIGKILL)

    def log(self, name: str) -> str:
        return (self.tmp / f"worker-{name}.log").read_text(errors="replace")


SENSORS = """{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name sensorState {
    id status ticks(limit: 1) { status skipReason error { message } } } } } } } }"""
STOP_SENSOR = """mutation($id: String) { stopSensor(id: $id) {
    __typename ... on PythonError { message } } }"""
LAUNCH_BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey } ... on PartitionSetNotFoundError { message } } }"""


@dataclass
class Ui:
    """The webserver's GraphQL API: what the UI's buttons send."""

    url: str

    def query(self, query: str, **variables) -> dict:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def sensors(self) -> dict[str, dict]:
        """Each sensor's state and latest tick, by name, as the UI's Sensors page shows them."""
        repositories = self.query(SENSORS)["repositoriesOrError"]["nodes"]
        return {s["name"]: s["sensorState"] for r in repositories for s in r["sensors"]}

    def finished_tick(self, sensor: str, timeout: float = 120) -> dict:
        """The sensor's latest finished tick, as the Sensors page shows it: a tick the daemon is
        still evaluating reads STARTED, so wait for it to end."""
        latest: list[dict] = []

        def finished() -> bool:
            latest[:] = self.sensors()[sensor]["ticks"][:1]
            return bool(latest) and latest[0]["status"] != "STARTED"

        wait_for(finished, timeout, f"a finished tick of {sensor}", 0.5)
        return latest[0]

    def stop_sensors(self, keep: tuple[str, ...] = ()) -> list[str]:
        """Stop every running sensor but `keep` (the UI's toggle): a backfill then runs alone. Their names."""
        sensors = self.sensors()
        running = [n for n, state in sensors.items() if state["status"] == "RUNNING" and n not in keep]
        for name in running:
            stopped = self.query(STOP_SENSOR, id=sensors[name]["id"])["stopSensor"]
            assert stopped["__typename"] == "StopSensorMutationResult", stopped
        return running

    def launch_backfill(self, days_by_asset: dict[dg.AssetKey, tuple[str, str]]) -> str:
        """An asset backfill of each asset's (first, last) days, as the UI's "Materialize" dialog
        launches one; the daemon runs it. Its id."""
        by_asset = [
            {"assetKey": {"path": key.path}, "partitions": {"range": {"start": first, "end": last}}}
            for key, (first, last) in days_by_asset.items()
        ]
        params = {"partitionsByAssets": by_asset, "title": "cluster backfill"}
        launched = self.query(LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        return launched["backfillId"]


def wait_for_backfill(instance: dg.DagsterInstance, backfill_id: str, timeout: float) -> list[dg.DagsterRun]:
    """Until the daemon has finished the backfill; its runs."""
    wait_for(
        lambda: instance.get_backfill(backfill_id).status.value not in ("REQUESTED", "CANCELING"),
        timeout,
        f"backfill {backfill_id}",
    )
    backfill = instance.get_backfill(backfill_id)
    runs = [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))]
    failed = {
        f"{run.job_name} {run.tags.get('dagster/partition', '')}": [
            str(e.dagster_event.event_specific_data.error.message)[:2000]
            for e in instance.all_logs(
                run.run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
            )
            if e.dagster_event.event_specific_data and getattr(e.dagster_event.event_specific_data, "error", None)
        ]
        for run in runs
        if not run.is_success
    }
    assert backfill.status.value == "COMPLETED_SUCCESS" and not failed, (backfill.status, failed)
    return runs


@contextmanager
def daemon_and_ui(tmp: Path) -> Iterator[Ui]:
    """`dagster-daemon` and `dagster-webserver` of the deployment in `os.environ`, on the host
    that orchestrates (its runs' processes send their steps to the workers); every sensor but
    the workers' health stopped before the daemon starts."""
    port = free_port()
    with open(tmp / "daemon.log", "ab") as log:
        web = start_webserver(port, log)
        daemon = None
        try:
            ui = Ui(f"http://127.0.0.1:{port}")
            wait_for(lambda: _answers(ui), 120, "dagster-webserver", 0.5)
            ui.stop_sensors(keep=(HEALTH_SENSOR,))
            daemon = subprocess.Popen(
                [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
                cwd=ROOT,
                env=dict(os.environ),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            yield ui
        finally:
            stop_process_group(*[p for p in (daemon, web) if p is not None])


def _answers(ui: Ui) -> bool:
    try:
        return bool(ui.sensors())
    except (requests.RequestException, AssertionError):
        return False


@contextmanager
def git_daemon(repositories: Path) -> Iterator[str]:
    """`git daemon` serving the bare repositories under `repositories` (push enabled) on
    127.0.0.1: the registry's git remote as other hosts reach it. Yields the base URL."""
    port = free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--listen=127.0.0.1"]
        + [f"--port={port}", f"--base-path={repositories}", str(repositories)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"git://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: not subprocess.run(["git", "ls-remote", f"{url}/registry.git"], capture_output=True).returncode,
            30,
            "git daemon",
            0.2,
        )
        yield url
    finally:
        stop_process_group(proc)


@contextmanager
def cluster_stack(tmp: Path, scale: LakeScale) -> Iterator[Cluster]:
    """Servers up, lake generated, PLATFORM_ASSETS_DEPLOYMENT=cluster in `os.environ` (the test
    process orchestrates runs); start workers with `Cluster.start_worker` (stopped on exit)."""
    assert shutil.which("unshare"), "util-linux's unshare is needed to give each worker a disk of its own"
    with served_environment(tmp, scale) as served, redis_server() as broker, git_daemon(tmp) as git:
        cluster = Cluster(served, broker, tmp)
        settings = {
            "PLATFORM_ASSETS_DEPLOYMENT": "cluster",
            "PLATFORM_ASSETS_BROKER_URL": broker,
            "PLATFORM_ASSETS_REGISTRY_GIT_REMOTE": f"{git}/{served.registry_git_remote.name}",
        }
        with environment(settings):
            try:
                yield cluster
            finally:
                stop_process_group(*cluster.workers.values())
                for host in cluster.hosts:
                    shutil.rmtree(host, ignore_errors=True)


# A backfill from events to pinned shards: the events and feature tables of every day, the
# embeddings and shards of the days whose labels are complete (the next day's events close them).
DAILY = [keys.EVENTS, keys.EVENTS_QUARANTINE, keys.ACTIVITY_TILES, keys.USER_ACTIVITY, keys.LATEST_ACTIVITY]
DAILY += [keys.LABELS, keys.TRAINING_SET]
TRAINABLE_DAILY = [keys.IMAGE_EMBEDDINGS, keys.TITLE_EMBEDDINGS, keys.TRAINING_SHARDS]


def backfill_days(days: list[str], trainable: list[str]) -> dict[dg.AssetKey, tuple[str, str]]:
    """Each asset's (first, last) day in the backfill from events to pinned shards."""
    return {k: (days[0], days[-1]) for k in DAILY} | {k: (trainable[0], trainable[-1]) for k in TRAINABLE_DAILY}


def workers_of(instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> dict[str, str]:
    """The worker that last started each step of `runs`, by "<partition or range> <step key>"."""
    ran = {}
    for run in runs:
        days = run.tags.get("dagster/partition") or f"{run.tags.get(RANGE_START_TAG)}..{run.tags.get(RANGE_END_TAG)}"
        for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            metadata = record.dagster_event.event_specific_data.metadata or {}
            if "Celery worker" in metadata:
                ran[f"{days} {record.dagster_event.step_key}"] = metadata["Celery worker"].value
    return ran


def step_story(instance: dg.DagsterInstance, run_id: str, step_key: str) -> list[str]:
    """What the run's event log holds of one step, in order: each worker that took it ("on <name>")
    and the step's start, success and failure, as the workers' processes wrote them."""
    story = []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key != step_key:
            continue
        metadata = (event.event_specific_data.metadata or {}) if event.is_engine_event else {}
        if "Celery worker" in metadata:
            story.append(f"on {metadata['Celery worker'].value.split('@')[0]}")
        elif event.event_type_value in {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE"}:
            story.append(event.event_type_value)
    return story


def registry_refs(cluster: Cluster) -> str:
    """The registry's branches and tags as its git remote holds them."""
    remote = cluster.served.env["PLATFORM_ASSETS_REGISTRY_GIT_REMOTE"]
    return subprocess.run(["git", "ls-remote", remote], capture_output=True, text=True, check=True).stdout


def lake_digest(lake: LakeStore) -> dict[str, str]:
    """sha256 of every staged, feature and embeddings file in the lake."""
    files = [f.key for prefix in ("staging", "features", "embeddings") for f in lake.list_files(prefix)]
    return {key: hashlib.sha256(lake.read_bytes(key)).hexdigest() for key in files}

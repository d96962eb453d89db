"""The production deployment on one machine, for end-to-end tests and the latency benchmark:
PostgreSQL (instance storage and app database), an S3 API server (lake, compute logs, the data
registry's DVC remote), a bare git repository (the registry's git remote), the shipped
`deploy/production/dagster.yaml`, and real `dagster-daemon` and `dagster-webserver` processes
on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from platform_assets.defs.partitions import range_tags
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.simulator import LakeScale, generate_lake
from platform_assets_tests.support.helpers import ROOT, environment, scale_days
from platform_assets_tests.support.pg_server import postgres_server
from platform_assets_tests.support.s3_server import make_bucket, s3_server

FAST_EMBEDDINGS = {  # by job
    "image_encoder_job": {"ops": {"embeddings__image_encoder": {"config": {"epochs": 1, "batch_size": 64}}}},
    "embeddings_job": {"ops": {"embeddings__image_embeddings": {"config": {"workers": 0}}}},
}


@dataclass
class Stack:
    instance: dg.DagsterInstance
    lake: LakeStore
    env: dict[str, str]
    registry: Path  # the data registry's checkout (PLATFORM_ASSETS_WORKSPACE)
    registry_git_remote: Path  # the bare repository its commits and tags are pushed to
    webserver_url: str
    start_daemon: Callable[[], subprocess.Popen]
    daemon: subprocess.Popen | None = None

    def restart_daemon(self) -> None:
        """Stop the daemon (and its code server) and start a new one: only the instance remains."""
        if self.daemon is not None:
            stop_process_group(self.daemon)
        self.daemon = self.start_daemon()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_group(*procs: subprocess.Popen) -> None:
    """Stop servers and every process they started (the daemon's and webserver's code servers),
    side by side: each gets SIGTERM at once, then up to 30 s before SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        live = []
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
                live.append(proc)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        procs = []
        for proc in live:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.01))
                os.killpg(proc.pid, signal.SIGKILL)  # children that outlived their parent
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                procs.append(proc)
        if not procs:
            return


def start_webserver(port: int, out=subprocess.DEVNULL) -> subprocess.Popen:
    """`dagster-webserver` on 127.0.0.1:`port` over the project's workspace, in a process group of
    its own (stop it with `stop_process_group`)."""
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-w", "workspace.yaml"]
        + ["-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(predicate, timeout: float, what: str, poll: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


@dataclass
class Served:
    """The servers and settings of the production deployment, in `os.environ` while open."""

    env: dict[str, str]
    lake: LakeStore
    registry_git_remote: Path


@contextmanager
def served_environment(tmp: Path, scale: LakeScale) -> Iterator[Served]:
    """PostgreSQL (instance and app database), the S3 API server (lake, compute logs, DVC
    remote), a bare git repository for the registry, the lake generated, and the production
    settings in `os.environ` (restored on exit)."""
    with postgres_server() as pg_url, s3_server() as endpoint:
        make_bucket(endpoint, "lake")
        make_bucket(endpoint, "logs-bucket")
        make_bucket(endpoint, "dvc-store")
        git_remote = tmp / "registry.git"
        subprocess.run(["git", "init", "-q", "--bare", str(git_remote)], check=True)
        engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE dagster"))
            conn.execute(sa.text("CREATE DATABASE app"))
        engine.dispose()
        host, port = pg_url.split("@")[1].split("/")[0].split(":")
        app_db = pg_url.rsplit("/", 1)[0] + "/app"
        lake = LakeStore("s3://lake/prod", s3_endpoint_url=endpoint)
        generate_lake(lake, app_db, scale)
        home = tmp / "dagster_home"
        home.mkdir()
        shutil.copy(ROOT / "deploy" / "production" / "dagster.yaml", home)
        env = {
            "PLATFORM_ASSETS_DEPLOYMENT": "production",
            "PLATFORM_ASSETS_IMAGE_SIZE": "64",  # the simulator's images: production's 224 would only upscale them
            "PLATFORM_ASSETS_LAKE": lake.root,
            "PLATFORM_ASSETS_S3_ENDPOINT_URL": endpoint,
            "PLATFORM_ASSETS_APP_DB_URL": app_db,
            "PLATFORM_ASSETS_WORKSPACE": str(tmp / "registry"),
            "PLATFORM_ASSETS_DVC_REMOTE": "s3://dvc-store/registry",
            "PLATFORM_ASSETS_REGISTRY_GIT_REMOTE": str(git_remote),
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_USERNAME": "platform",
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_HOST": host,
            "DAGSTER_PG_PORT": port,
            "DAGSTER_PG_DB": "dagster",
            "DAGSTER_COMPUTE_LOG_BUCKET": "logs-bucket",
        }
        with environment(env):
            yield Served(env, lake, git_remote)


@contextmanager
def production_stack(tmp: Path, scale: LakeScale) -> Iterator[Stack]:
    """Servers up, lake generated, app database and embeddings materialized, daemon running."""
    with served_environment(tmp, scale) as served:
        from platform_assets.definitions import defs

        definitions = defs()
        with dg.DagsterInstance.get() as instance:
            assert definitions.resolve_job_def("app_db_job").execute_in_process(instance=instance).success
            days = scale_days(scale)
            for job in ("image_encoder_job", "embeddings_job"):
                assert (
                    definitions.resolve_job_def(job)
                    .execute_in_process(
                        instance=instance, run_config=FAST_EMBEDDINGS[job], tags=range_tags(days[0], days[-1])
                    )
                    .success
                )
            bin_dir = Path(sys.executable).parent
            with open(tmp / "daemon.log", "a") as log:

                def start_daemon() -> subprocess.Popen:
                    return subprocess.Popen(
                        [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                        cwd=ROOT,
                        env=dict(os.environ),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )

                port = free_port()
                web = start_webserver(port, log)
                stack = Stack(
                    instance,
                    served.lake,
                    served.env,
                    tmp / "registry",
                    served.registry_git_remote,
                    f"http://127.0.0.1:{port}",
                    start_daemon,
                )
                stack.restart_daemon()
                try:
                    yield stack
                finally:
                    stop_process_group(stack.daemon, web)

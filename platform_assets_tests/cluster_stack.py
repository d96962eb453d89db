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

from platform_assets.lib.simulator import LakeScale
from platform_assets_tests.production_stack import (
    Served,
    environment,
    free_port,
    served_environment,
    stop_process_group,
    wait_for,
)
from platform_assets_tests.redis_server import redis_server


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

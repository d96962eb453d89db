"""A real S3 API server on loopback (moto's server mode) for the lake and the DVC remote."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import boto3

from platform_assets_tests.support.helpers import environment

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_REGION": "us-east-1"}
START_S = 60


@contextmanager
def s3_server() -> Iterator[str]:
    """Start the server on 127.0.0.1 with an ephemeral port; yield its endpoint URL.

    Each server is a process of its own, so each starts empty: moto keeps its buckets in
    process-wide state, and servers started as threads of one process (ThreadedMotoServer)
    shared them (test_daemon_e2e found a day test_cluster had appended, on one xdist worker).
    Its threads do not share the test's interpreter either."""
    with environment(CREDENTIALS), tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield _endpoint(server, log)
        finally:
            server.terminate()
            server.wait(30)


def _endpoint(server: subprocess.Popen, log) -> str:
    """The address the server prints once it listens."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline and server.poll() is None:
        log.seek(0)
        if found := re.search(rb"Running on (http://127\.0\.0\.1:\d+)", log.read()):
            return found.group(1).decode()
        time.sleep(0.05)
    log.seek(0)
    raise RuntimeError(f"moto's S3 server did not start in {START_S} s: {log.read()[-2000:].decode(errors='replace')}")


def make_bucket(endpoint: str, name: str) -> None:
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)

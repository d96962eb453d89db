"""A real Redis server for the cluster's broker: Debian's `redis-server` (installed on first
use), on 127.0.0.1 and a free port, nothing saved to disk."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from platform_assets_tests.support.helpers import debian_command
from platform_assets_tests.support.production_stack import free_port


@contextmanager
def redis_server() -> Iterator[str]:
    """The server's URL, database 0."""
    binary = debian_command("redis-server", "redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="redis-") as data:
        proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", data],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    redis.Redis.from_url(url).ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)

"""A partition materialized in a child process that a crash test can SIGKILL, with every
command it started (see materialize_child.py for the child itself)."""

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from platform_assets_tests.reliability.materialize_child import command
from platform_assets_tests.support.helpers import Lake

DAY = "2026-11-01"


class Child:
    """One partition materialized in its own process (see materialize_child.py), pinning into
    the registry at `registry` and pushing to `dvc_remote` (by default the directory
    `dvc-remote` beside the registry). It runs in a session of its own, so a kill takes the
    git and DVC commands it started with it, as a crash of the machine or container would."""

    def __init__(
        self,
        asset: str,
        lake: Lake,
        registry: Path,
        tmp: Path,
        dvc_remote: str | None = None,
        s3_endpoint_url: str | None = None,
    ) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the child
        self.proc = subprocess.Popen(
            command(asset, DAY, lake.store.root, lake.app_db_url, str(registry), dvc_remote, s3_endpoint_url),
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={**os.environ, "TMPDIR": str(tmp)},
            start_new_session=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"
        self.started = time.monotonic()

    def finish(self) -> float:
        if self.proc.wait(timeout=300):
            self.log.seek(0)
            raise AssertionError(f"the {self.proc.args[3]} child failed:\n{self.log.read()[-4000:]}")
        return time.monotonic() - self.started

    def kill_when(self, marker: Callable[[], bool]) -> bool:
        """SIGKILL the process group as soon as `marker()` holds; False when the run finished first."""
        deadline = time.monotonic() + 120
        while not marker():
            if self.proc.poll() is not None:
                return False
            assert time.monotonic() < deadline
            time.sleep(0.0005)
        with contextlib.suppress(ProcessLookupError):  # it may have finished since
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return True

"""Background-lane runs take the CPU last: the run process and every step process it starts
run at `BACKGROUND_NICE`; other runs keep the priority they were started with."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from platform_assets.defs.run_lanes import BACKGROUND, BACKGROUND_NICE

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "platform_assets_tests" / "lane_probe_jobs.py"

# Threads already running, threads started later and a child process, after the call; a second
# call asking for less never raises the priority back.
THREADS_SCRIPT = """
import os, sys, threading, subprocess
from platform_assets.lib.cpu_priority import lower_cpu_priority
started, stop = threading.Event(), threading.Event()
def wait():
    started.set(); stop.wait()
old = threading.Thread(target=wait); old.start(); started.wait()
first = lower_cpu_priority(int(sys.argv[1]))
second = lower_cpu_priority(int(sys.argv[1]) - 5)
seen = {}
new = threading.Thread(target=lambda: seen.update(new=os.getpriority(os.PRIO_PROCESS, 0))); new.start(); new.join()
child = subprocess.run([sys.executable, "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"],
                       capture_output=True, text=True, check=True).stdout
print(first, second, os.getpriority(os.PRIO_PROCESS, old.native_id), seen["new"], int(child))
stop.set()
"""


def test_lowering_priority_reaches_every_thread_and_child():
    out = subprocess.run(
        [sys.executable, "-c", THREADS_SCRIPT, "7"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    first, second, old_thread, new_thread, child = map(int, out.stdout.split())
    assert (first, second, old_thread, new_thread, child) == (7, 7, 7, 7, 7)


@pytest.mark.slow
@pytest.mark.parametrize("job", ["in_process_job", "multiprocess_job"])
def test_background_lane_runs_its_steps_at_lower_priority(tmp_path: Path, job: str):
    """`dagster job execute`, the run worker's path: the job's own executor, the run's tags."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    niceness = {}
    for lane, tags in (("background", BACKGROUND), ("default", {})):
        env["LANE_PROBE_OUT"] = str(tmp_path / f"{lane}.txt")
        cmd = [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-f", str(PROBE), "-j", job]
        with subprocess.Popen(
            [*cmd, "--tags", json.dumps(tags)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc:
            log, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, log
        pid, niceness[lane] = map(int, Path(env["LANE_PROBE_OUT"]).read_text().split())
        # in the run process itself, or in a step process it started
        assert (pid == proc.pid) == (job == "in_process_job"), (pid, proc.pid)
    assert niceness == {"background": BACKGROUND_NICE, "default": os.getpriority(os.PRIO_PROCESS, 0)}

"""Background-lane runs take the CPU last: the run process and every step process it starts
run at `PLATFORM_ASSETS_BACKGROUND_NICE` (10); other runs keep the priority they were started with."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from platform_assets.defs.run_lanes import BACKGROUND, DEFAULT_BACKGROUND_NICE
from platform_assets_tests.support.helpers import ROOT

PROBE = ROOT / "platform_assets_tests" / "support" / "lane_probe_jobs.py"

# Threads already running, threads started later and a child process, after the call; a second
# call asking for less never raises the priority back.
THREADS_SCRIPT = """
import os, sys, threading, subprocess
from platform_assets.lib.cpu import lower_cpu_priority
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
    """`dagster job execute`, the run worker's path: the job's own executor, the run's tags; a
    run outside the lane, or with the setting at 0, keeps the priority it started with."""
    start = os.getpriority(os.PRIO_PROCESS, 0)
    cases = {"background": (BACKGROUND, None), "default": ({}, None), "background, setting 0": (BACKGROUND, "0")}
    niceness = {}
    for case, (tags, setting) in cases.items():
        out = tmp_path / f"{len(niceness)}.txt"
        env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "LANE_PROBE_OUT": str(out)}
        env.pop("PLATFORM_ASSETS_BACKGROUND_NICE", None)
        env |= {"PLATFORM_ASSETS_BACKGROUND_NICE": setting} if setting else {}
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
        pid, niceness[case] = map(int, out.read_text().split())
        # in the run process itself, or in a step process it started
        assert (pid == proc.pid) == (job == "in_process_job"), (pid, proc.pid)
    assert niceness == {"background": DEFAULT_BACKGROUND_NICE, "default": start, "background, setting 0": start}


@pytest.mark.parametrize("value", ["-5", "20", "low"])
def test_a_bad_background_nice_fails_at_load_naming_the_setting(monkeypatch, value: str):
    from platform_assets.definitions import defs

    monkeypatch.setenv("PLATFORM_ASSETS_BACKGROUND_NICE", value)
    with pytest.raises(ValueError, match=rf"PLATFORM_ASSETS_BACKGROUND_NICE='{value}': set a whole number from 0"):
        defs()

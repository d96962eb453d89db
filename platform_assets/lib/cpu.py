"""The cores a process may use, and lowering its CPU priority, every thread of it."""

import os
from pathlib import Path

_THREADS = Path("/proc/self/task")


def usable_cores() -> int:
    """The cores this process may run on (its affinity: `taskset`, a container's cpuset), not the machine's."""
    return len(os.sched_getaffinity(0))


def lower_cpu_priority(niceness: int) -> int:
    """Raise the nice value of every thread of this process to at least `niceness` and return the
    calling thread's. Linux keeps a nice value per thread (`setpriority` on pid 0 changes only the
    caller), so the threads already running (a DuckDB pool, torch's) are set one by one; threads
    and processes started afterwards inherit it. Never lowers a value: that needs privileges."""
    threads = [int(tid.name) for tid in _THREADS.iterdir()] if _THREADS.is_dir() else [0]
    for tid in threads:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except ProcessLookupError:  # the thread ended meanwhile
            continue
    return os.getpriority(os.PRIO_PROCESS, 0)

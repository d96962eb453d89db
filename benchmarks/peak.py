"""Peak memory of the current process, for benchmark children (stdlib only)."""

from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, unlike ru_maxrss, is not inherited across exec, so a
    child started by a large parent reports only its own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")

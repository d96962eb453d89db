"""What every benchmark script shares (stdlib only: the peers' environment imports it too)."""

import argparse
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, unlike ru_maxrss, is not inherited across exec, so a
    child started by a large parent reports only its own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def bench_parser(*child_args: str) -> argparse.ArgumentParser:
    """Arguments of a benchmark: its scale and repeats, plus the ones its child processes take."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000, help="events in the benchmark lake")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base", default="/tmp/platform-assets-bench", help="where lakes and outputs are kept")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    for name in child_args:
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    return parser

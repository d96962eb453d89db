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


def rows_digest(table) -> str:
    """A hash of a table's rows whatever their order and chunking (sorted by every column, one
    batch): two ways that compute the same rows in another order or in ranges hash the same."""
    import hashlib

    import pyarrow as pa

    rows = table.sort_by([(name, "ascending") for name in table.column_names]).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return hashlib.sha256(sink.getvalue()).hexdigest()[:16]


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


def history_medians(
    module: str, ways: list[str], histories: list[int], repeats: int, child_args: list[str]
) -> dict[tuple[str, int], dict]:
    """Run `python -m <module> --child <way> --history_n <h> <child_args>` for every way and
    history, `repeats` rounds of fresh processes; the median run (by wall seconds) of each."""
    import json
    import subprocess
    import sys

    results: dict[tuple[str, int], list[dict]] = {}
    for _ in range(repeats):
        for history in histories:
            for way in ways:
                done = subprocess.run(
                    [sys.executable, "-m", module, "--child", way, "--history_n", str(history), *child_args],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                results.setdefault((way, history), []).append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2] for key, runs in results.items()}


def print_history_ratios(median: dict[tuple[str, int], dict], ways: list[str], histories: list[int]) -> None:
    """How each way grows from the shortest history to the longest, and the second way over the first."""
    lo, hi = histories[0], histories[-1]
    for way in ways:
        a, b = median[(way, lo)], median[(way, hi)]
        print(f"{way}: {hi} days of history / {lo}: wall {b['seconds'] / a['seconds']:.2f}x, "
              f"peak RSS {b['peak_mb'] / a['peak_mb']:.2f}x")  # fmt: skip
    if len(ways) == 2:
        first, second = median[(ways[0], hi)], median[(ways[1], hi)]
        print(f"at {hi} days: {ways[1]} / {ways[0]} = {second['seconds'] / first['seconds']:.1f}x wall, "
              f"{second['peak_mb'] / first['peak_mb']:.1f}x memory")  # fmt: skip

"""Benchmark: the CPU a day's hourly arrivals spend on staging, against staging the day once.

    .venv/bin/python -m benchmarks.staging_arrivals [--events 1000000] [--repeats 1]
        [--ways once,arrivals,re-stage per file]

A one-day lake from the simulator (4 files an hour, 96 files and a redelivery; defects and
duplicates planted). Three ways, each a fresh process on a fresh copy of the day's state:
- once: the whole day staged in one run (`stage_day`, `restage`), what a backfill does;
- arrivals: the files staged as they land, one run per file (`stage_day` on the listing so
  far: each run parses only the new file and appends a part), as `new_logs_sensor` runs it;
- re-stage per file (the baseline, the way the asset worked before): the whole day so far
  staged again on every arrival.
Each prints its CPU seconds (every thread), wall seconds and peak RSS; the arrivals' parts hold
the same events as staging once (checked: count and a hash of the sorted ids).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow as pa

from benchmarks.common import bench_parser, peak_rss_mb
from benchmarks.events_transform import cpu_seconds, lake_for
from platform_assets.lib.lake_layout import EVENTS_PATH, day_parts, list_log_days
from platform_assets.lib.lake_store import LakeStore


def staged_state_removed(store: LakeStore) -> None:
    for dataset in ("staging/events", "staging/events_quarantine"):
        shutil.rmtree(Path(store.root) / dataset, ignore_errors=True)


def child(args) -> None:
    from platform_assets.lib.staging.day_parts import stage_day

    store = LakeStore(args.lake)
    staged_state_removed(store)
    (day, listing), *_ = list_log_days(store)[0].items()
    files = sorted(listing.files, key=lambda f: (f.landed_ns, f.key))
    when = date.fromisoformat(day)
    started, cpu = time.perf_counter(), cpu_seconds()
    if args.child == "once":
        stage_day(store, when, files, restage=True)
    elif args.child == "arrivals":
        for n in range(1, len(files) + 1):
            stage_day(store, when, files[:n])
    else:
        for n in range(1, len(files) + 1):
            stage_day(store, when, files[:n], restage=True)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    parts = day_parts(store, EVENTS_PATH, day)
    ids = pa.concat_tables(store.read_parquet(p, columns=["event_id"]) for p in parts)["event_id"]
    digest = hashlib.sha256("\n".join(sorted(ids.to_pylist())).encode()).hexdigest()[:16]
    result = {"seconds": seconds, "cpu": cpu, "peak_mb": peak_rss_mb(), "files": len(files), "parts": len(parts),
              "events": len(ids), "ids": digest}  # fmt: skip
    print(json.dumps(result))


def main() -> None:
    parser = bench_parser("lake")
    parser.set_defaults(events=1_000_000, repeats=1)
    parser.add_argument(
        "--ways", default="once,arrivals,re-stage per file", help="the baseline is slow past 1 M events"
    )
    args = parser.parse_args()
    if args.child:
        return child(args)
    base = Path(args.base)
    store = lake_for(args.events, base, days=1)
    ways = args.ways.split(",")
    results: dict[str, list[dict]] = {w: [] for w in ways}
    for _ in range(args.repeats):
        for way in ways:
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.staging_arrivals", "--child", way, "--lake", store.root],
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(f"{way} failed:\n{done.stderr[-3000:]}")
            results[way].append(json.loads(done.stdout.strip().splitlines()[-1]))
    median = {w: sorted(r, key=lambda x: x["cpu"])[len(r) // 2] for w, r in results.items()}
    once = median["once"]
    lines = json.loads(store.read_bytes("_simulator/manifest.json"))["total"]["lines"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; one day, {lines:,} lines, {once['events']:,} "
          f"events in {once['files']} files; median of {args.repeats}")  # fmt: skip
    print("| way | runs | CPU s | CPU / once | wall s | peak RSS | parts | events | ids sha |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for way in ways:
        r = median[way]
        runs = 1 if way == "once" else r["files"]
        print(f"| {way} | {runs} | {r['cpu']:.1f} | {r['cpu'] / once['cpu']:.2f}x | {r['seconds']:.1f} | "
              f"{r['peak_mb']:,.0f} MB | {r['parts']} | {r['events']:,} | {r['ids']} |")  # fmt: skip


if __name__ == "__main__":
    main()

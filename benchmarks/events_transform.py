"""Benchmark: the `events` transform vs a straightforward pandas implementation, and vs
`zcat` of the same files (decompression alone, the floor). Same lake, same run.

    .venv/bin/python -m benchmarks.events_transform [--events 10000000] [--repeats 3]

Each implementation runs in its own process (so peak RSS is its own) over every day of the
lake, one partition at a time, and writes its events; the parent checks both produced the same
rows and the same quarantine count, then prints events/s, ratios and peak memory.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from benchmarks.common import bench_parser, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]


def lake_for(events: int, base: Path):
    from platform_assets.lib.lake_store import LakeStore
    from platform_assets.lib.simulator import LakeScale, generate_lake

    days = 7
    scale = LakeScale(
        users=50_000,
        photos=60_000,
        days=days,
        events_per_day=int(events / days * 1.1),
        files_per_hour=4,
        defect_rate=0.002,
        seed=1,
    )
    lake_dir = base / f"lake-{events}"
    store = LakeStore(str(lake_dir))
    if not store.exists("_simulator/manifest.json"):
        lake_dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        generate_lake(store, f"sqlite:///{base / f'app-{events}.db'}", scale, images=False)
        print(f"generated lake in {time.perf_counter() - t:.0f}s", flush=True)
    return store


class Timed:
    """Iterates `items`, adding up the time the consumer spends between them (writing)."""

    def __init__(self, items):
        self.items, self.untimed = items, 0.0

    def __iter__(self):
        for item in self.items:
            t = time.perf_counter()
            yield item
            self.untimed += time.perf_counter() - t


def time_it(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_one(impl: str, lake_dir: str, out_dir: str) -> None:
    """Child process: transform every day with `impl`, write events, print stats as JSON."""

    from platform_assets.lib.lake_layout import list_log_days
    from platform_assets.lib.lake_store import LakeStore

    store = LakeStore(lake_dir)
    days, _ = list_log_days(store)
    events = quarantined = 0
    seconds = 0.0
    for day, listing in days.items():
        keys = [f.key for f in listing.files]
        path = f"{out_dir}/{impl}-{day}.parquet"
        t = time.perf_counter()  # from the raw files to the day's events, in memory or streamed; writing excluded
        if impl == "platform":
            from platform_assets.lib.staging.events import transform_events, write_events
            from platform_assets.lib.staging.log_lines import read_log_lines

            with transform_events(read_log_lines(store, keys), date.fromisoformat(day)) as result:
                timed = Timed(result.events)  # the transform's time only, not the writer's
                write_events(timed, Path(path))
            rows, q = result.stats["events"], result.quarantine.num_rows
            t += timed.untimed
        else:
            from benchmarks.pandas_events import pandas_events

            df, q = pandas_events([(os.path.join(lake_dir, k), k) for k in keys], date.fromisoformat(day))
            rows = len(df)
            t += time_it(lambda df=df, path=path: df.to_parquet(path, compression="zstd", index=False))
            del df
        seconds += time.perf_counter() - t
        events += rows
        quarantined += q
    print(json.dumps({"seconds": seconds, "events": events, "quarantined": quarantined, "peak_mb": peak_rss_mb()}))


def child(impl: str, lake_dir: str, out_dir: str) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.events_transform",
            "--child",
            impl,
            "--lake-dir",
            lake_dir,
            "--out",
            out_dir,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def zcat_seconds(paths: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(["zcat", *paths], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def same_rows(out_dir: str) -> bool:
    """Every column but `extra_json` (pandas keeps the parsed record, not the raw text) equal."""
    import pyarrow.parquet as pq

    cols = ["event_id", "ts", "event_type", "user_id", "photo_id", "client", "source_file"]
    for f in sorted(Path(out_dir).glob("platform-*.parquet")):
        a = pq.read_table(f, columns=cols)
        a = a.cast(a.schema.remove_metadata())
        b = pq.read_table(f.with_name(f.name.replace("platform-", "pandas-")), columns=cols).cast(a.schema)
        if not a.equals(b):
            return False
    return True


def main() -> None:
    args = bench_parser("lake-dir", "out").parse_args()
    if args.child:
        return run_one(args.child, args.lake_dir, args.out)

    base = Path(args.base)
    base.mkdir(parents=True, exist_ok=True)
    store = lake_for(args.events, base)
    from platform_assets.lib.lake_layout import list_log_days

    days, _ = list_log_days(store)
    paths = [os.path.join(store.root, f.key) for d in days.values() for f in d.files]
    raw_bytes = sum(f.size for d in days.values() for f in d.files)
    out_dir = base / "out"
    out_dir.mkdir(exist_ok=True)
    runs: dict[str, list[dict]] = {"platform": [], "pandas": []}
    floors = []
    for i in range(args.repeats):
        floors.append(zcat_seconds(paths))
        for impl in runs:
            runs[impl].append(child(impl, store.root, str(out_dir)))
            print(f"repeat {i + 1} {impl}: {runs[impl][-1]}", flush=True)
    identical = same_rows(str(out_dir))
    med = {impl: statistics.median(r["seconds"] for r in rs) for impl, rs in runs.items()}
    events = runs["platform"][0]["events"]
    uncompressed = int(
        subprocess.run(f"zcat {' '.join(paths)} | wc -c", shell=True, capture_output=True, text=True).stdout
    )
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "events": events,
        "quarantined": runs["platform"][0]["quarantined"],
        "identical_rows_and_quarantine": identical
        and runs["platform"][0]["quarantined"] == runs["pandas"][0]["quarantined"],
        "raw_logs_gz_mb": round(raw_bytes / 2**20),
        "raw_logs_uncompressed_mb": round(uncompressed / 2**20),
        "median_seconds": {**{k: round(v, 2) for k, v in med.items()}, "zcat": round(statistics.median(floors), 2)},
        "events_per_second": {k: round(events / v) for k, v in med.items()},
        "speedup_vs_pandas": round(med["pandas"] / med["platform"], 1),
        "multiple_of_zcat_floor": round(med["platform"] / statistics.median(floors), 2),
        "peak_rss_mb": {k: round(max(r["peak_mb"] for r in rs)) for k, rs in runs.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: the `events` transform vs a straightforward pandas implementation, and vs the
floor of decompressing the same files in parallel (`xargs -P <cores> zcat`), at 1 core and at
every core (`taskset`). Same lake, same run.

    .venv/bin/python -m benchmarks.events_transform [--events 10000000] [--repeats 3]
    .venv/bin/python -m benchmarks.events_transform --backfill-days 30 [--events 3000000]

Each implementation runs in its own process (so peak RSS is its own) over every day of the
lake, one partition at a time, and writes its events; the parent checks both produced the same
rows and the same quarantine count, then prints events/s, ratios and peak memory. With
`--backfill-days`, a lake of that many days is transformed one day after another in one
process, then with one worker process per core taking days in turn (as a backfill's runs do),
with each side's wall time and peak memory. The share of time the hypervisor took from this
machine (steal) is printed with each figure: above a few percent, rerun.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from benchmarks.common import bench_parser, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]


def lake_for(events: int, base: Path, days: int = 7):
    from platform_assets.lib.lake_store import LakeStore
    from platform_assets.lib.simulator import LakeScale, generate_lake

    scale = LakeScale(
        users=50_000,
        photos=60_000,
        days=days,
        events_per_day=int(events / days * 1.1),
        files_per_hour=4,
        defect_rate=0.002,
        seed=1,
    )
    lake_dir = base / (f"lake-{events}" if days == 7 else f"lake-{events}-{days}d")
    store = LakeStore(str(lake_dir))
    if not store.exists("_simulator/manifest.json"):
        lake_dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        generate_lake(store, f"sqlite:///{base / f'app-{events}-{days}.db'}", scale, images=False)
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


def cpu_seconds() -> float:
    """CPU time this process used so far, every thread counted: what the work costs, whatever the steal."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_it(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_one(impl: str, lake_dir: str, out_dir: str, worker: str | None = None) -> None:
    """Child process: transform every day (or worker `i/n`'s share) with `impl`, write events, print stats as JSON."""

    from platform_assets.lib.lake_layout import list_log_days
    from platform_assets.lib.lake_store import LakeStore

    store = LakeStore(lake_dir)
    days, _ = list_log_days(store)
    index, workers = map(int, (worker or "0/1").split("/"))
    events = quarantined = 0
    seconds = 0.0
    for day, listing in list(days.items())[index::workers]:
        keys = [f.key for f in listing.files]
        path = f"{out_dir}/{impl}-{day}.parquet"
        t = time.perf_counter()  # from the raw files to the day's events, in memory or streamed; writing excluded
        if impl == "platform":
            from platform_assets.lib.staging.events import transform_events, write_events
            from platform_assets.lib.staging.log_lines import read_log_lines

            with transform_events(read_log_lines(store, keys), date.fromisoformat(day)) as result:
                timed = Timed(result.events)  # the transform's time only, not the writer's
                write_events(timed, Path(path))
            rows, q = result.stats.events, result.quarantine.num_rows
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
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds(),
                "events": events,
                "quarantined": quarantined,
                "peak_mb": peak_rss_mb(),
            }
        )
    )


def child_command(impl: str, lake_dir: str, out_dir: str, cores: int | None = None, worker: str = "0/1") -> list[str]:
    """The child's command line, pinned to the first `cores` cores (all when None)."""
    pin = ["taskset", "-c", f"0-{cores - 1}"] if cores else []
    return [
        *pin,
        *(sys.executable, "-m", "benchmarks.events_transform", "--child", impl),
        *("--lake-dir", lake_dir, "--out", out_dir, "--worker", worker),
    ]


def child(impl: str, lake_dir: str, out_dir: str, cores: int | None = None) -> dict:
    """Run one child; its report, plus `wall`: the whole process, start-up included, as the parent saw it."""
    t = time.perf_counter()
    proc = subprocess.run(
        child_command(impl, lake_dir, out_dir, cores), capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"wall": time.perf_counter() - t}


def zcat_floor(paths: list[str], cores: int) -> float:
    """Decompressing every file to /dev/null with `cores` zcat processes on `cores` cores."""
    per_call = max(1, len(paths) // (cores * 8))
    t = time.perf_counter()
    subprocess.run(
        ["taskset", "-c", f"0-{cores - 1}", "xargs", "-0", "-P", str(cores), "-n", str(per_call), "zcat"],
        input="\0".join(paths).encode(),
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - t


class Steal:
    """The share of CPU time the hypervisor took while the block ran (/proc/stat `steal`)."""

    def __enter__(self) -> Steal:
        self.start = self._read()
        return self

    def __exit__(self, *exc) -> None:
        end = self._read()
        total = sum(end) - sum(self.start)
        self.share = (end[7] - self.start[7]) / total if total else 0.0

    @staticmethod
    def _read() -> list[int]:
        return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]


def backfill(args, base: Path) -> None:
    """A lake of `--backfill-days` days: one process, day after day, vs one worker process per core.
    Both walls are the parent's, process start-up included."""
    from platform_assets.lib.cpu import usable_cores

    store = lake_for(args.events, base, args.backfill_days)
    out_dir = base / "out-backfill"
    out_dir.mkdir(exist_ok=True)
    cores = usable_cores()
    runs: dict[str, list[dict]] = {"sequential": [], "parallel": []}
    for i in range(args.repeats):
        with Steal() as steal:
            result = child("platform", store.root, str(out_dir))
        runs["sequential"].append({"wall": result["wall"], "peak_mb": result["peak_mb"], "steal": steal.share})
        with Steal() as steal:
            t = time.perf_counter()
            procs = [
                subprocess.Popen(
                    child_command("platform", store.root, str(out_dir), worker=f"{w}/{cores}"),
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                )
                for w in range(cores)
            ]
            results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            wall = time.perf_counter() - t
        runs["parallel"].append(
            {
                "wall": wall,
                "peak_mb": sum(r["peak_mb"] for r in results),
                "worker_peak_mb": max(r["peak_mb"] for r in results),
                "steal": steal.share,
            }
        )
        print(f"repeat {i + 1}: {runs['sequential'][-1]} {runs['parallel'][-1]}", flush=True)
    med = {k: statistics.median(r["wall"] for r in v) for k, v in runs.items()}
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {cores} cores",
                "days": args.backfill_days,
                "events": args.events,
                "median_wall_seconds": {k: round(v, 2) for k, v in med.items()},
                "speedup": round(med["sequential"] / med["parallel"], 2),
                "peak_rss_mb": {
                    "sequential": round(max(r["peak_mb"] for r in runs["sequential"])),
                    "parallel_all_workers": round(max(r["peak_mb"] for r in runs["parallel"])),
                    "parallel_per_worker": round(max(r["worker_peak_mb"] for r in runs["parallel"])),
                },
                "steal": [round(r["steal"], 3) for v in runs.values() for r in v],
            },
            indent=2,
        )
    )


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
    parser = bench_parser("lake-dir", "out", "worker")
    parser.add_argument("--backfill-days", type=int, help="measure a backfill of a lake this many days long instead")
    args = parser.parse_args()
    if args.child:
        return run_one(args.child, args.lake_dir, args.out, args.worker)
    base = Path(args.base)
    base.mkdir(parents=True, exist_ok=True)
    if args.backfill_days:
        return backfill(args, base)

    store = lake_for(args.events, base)
    from platform_assets.lib.cpu import usable_cores
    from platform_assets.lib.lake_layout import list_log_days

    days, _ = list_log_days(store)
    paths = [os.path.join(store.root, f.key) for d in days.values() for f in d.files]
    raw_bytes = sum(f.size for d in days.values() for f in d.files)
    out_dir = base / "out"
    out_dir.mkdir(exist_ok=True)
    all_cores = usable_cores()
    core_counts = sorted({1, all_cores})
    platform_runs: dict[int, list[dict]] = {c: [] for c in core_counts}
    floors: dict[int, list[float]] = {c: [] for c in core_counts}
    pandas_runs: list[dict] = []
    steal: list[float] = []
    for i in range(args.repeats):
        with Steal() as s:
            for c in core_counts:
                floors[c].append(zcat_floor(paths, c))
                platform_runs[c].append(child("platform", store.root, str(out_dir), c))
                print(f"repeat {i + 1} platform on {c} cores: {platform_runs[c][-1]}", flush=True)
            pandas_runs.append(child("pandas", store.root, str(out_dir)))
            print(f"repeat {i + 1} pandas: {pandas_runs[-1]}", flush=True)
        steal.append(s.share)
    identical = same_rows(str(out_dir))
    med = {c: statistics.median(r["seconds"] for r in runs) for c, runs in platform_runs.items()}
    floor = {c: statistics.median(v) for c, v in floors.items()}
    pandas = statistics.median(r["seconds"] for r in pandas_runs)
    events = platform_runs[all_cores][0]["events"]
    uncompressed = int(
        subprocess.run(f"zcat {' '.join(paths)} | wc -c", shell=True, capture_output=True, text=True).stdout
    )
    report = {
        "machine": f"{platform.machine()}, {all_cores} cores, {platform.python_version()}",
        "events": events,
        "quarantined": platform_runs[all_cores][0]["quarantined"],
        "identical_rows_and_quarantine": identical
        and platform_runs[all_cores][0]["quarantined"] == pandas_runs[0]["quarantined"],
        "raw_logs_gz_mb": round(raw_bytes / 2**20),
        "raw_logs_uncompressed_mb": round(uncompressed / 2**20),
        "median_seconds": {
            **{f"platform_{c}_cores": round(v, 2) for c, v in med.items()},
            **{f"zcat_floor_{c}_cores": round(v, 2) for c, v in floor.items()},
            "pandas": round(pandas, 2),
        },
        "events_per_second": {f"platform_{c}_cores": round(events / v) for c, v in med.items()}
        | {"pandas": round(events / pandas)},
        "median_cpu_seconds_whole_child": {
            f"platform_{c}_cores": round(statistics.median(r["cpu_seconds"] for r in runs), 2)
            for c, runs in platform_runs.items()
        }
        | {"pandas": round(statistics.median(r["cpu_seconds"] for r in pandas_runs), 2)},
        "speedup_vs_pandas": round(pandas / med[all_cores], 1),
        "speedup_1_to_all_cores": round(med[1] / med[all_cores], 2),
        "multiple_of_zcat_floor": {f"{c}_cores": round(med[c] / floor[c], 2) for c in core_counts},
        "peak_rss_mb": {
            f"platform_{c}_cores": round(max(r["peak_mb"] for r in runs)) for c, runs in platform_runs.items()
        }
        | {"pandas": round(max(r["peak_mb"] for r in pandas_runs))},
        "steal_per_repeat": [round(v, 3) for v in steal],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

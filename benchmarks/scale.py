"""Benchmark: one day through the whole graph at 1x, 10x (and 100x) of a base whose 100x is the
production-size day (1 M users, 10 M events, 100,000 photos of 640x480).

    .venv/bin/python -m benchmarks.scale [--scales 1,10] [--size 64] [--base /tmp/platform-assets-bench]
        [--reuse-encoder]

For each scale it generates a three-day simulator lake (photo-sized JPEGs, 4 log files an hour;
the first day is the one measured, the others make it trainable)
and runs the jobs the sensors and schedules launch, each in a fresh process on one Dagster
instance: `app_db_job`, `events_job` (the day staged whole, as a backfill does), `features_job`,
`embeddings_job`, `shards_job` (augment and pin) and `nightly_training_job`;
`image_encoder_job` (a retraining, not a daily step) is timed apart; `--reuse-encoder` keeps
the one a previous run of the scale trained and skips it. `--only JOB,...` reruns those jobs
(names as printed) on each scale's last run, after a change to them, and nothing else. Per job it prints wall
and CPU seconds (the process and its decode workers), the peak RSS of the run process and of
its largest worker, and per asset the rows and bytes written, and the cost per unit: seconds
per 1 M log lines for the log-driven jobs, per 1,000 photos for the photo-driven ones.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import bench_parser, peak_rss_mb

BASE_USERS, BASE_EVENTS, BASE_PHOTOS = 10_000, 170_000, 1_000  # x100: ~10 M lines (the simulator keeps ~59 %)
# The day measured, and the next: training holds one day out, so it needs two days of shards;
# the third day's events close the second day's 24 h label windows.
DAY, NEXT, THIRD = "2026-11-01", "2026-11-02", "2026-11-03"
PHOTO_JOBS = {"image_encoder_job", "embeddings_job", "shards_job", "nightly_training_job"}
STAGE = ["staging/events", "staging/events_quarantine"]
JOBS = [  # (job and what the run is for, how it is launched); "day 2"/"day 3" runs make the measured day trainable
    ("app_db_job", {}),
    ("events_job", {"partition_key": DAY, "selection": STAGE}),
    ("events_job day 2", {"partition_key": NEXT, "selection": STAGE}),
    ("events_job day 3", {"partition_key": THIRD, "selection": STAGE}),
    ("features_job", {"range": [DAY, DAY]}),
    ("features_job day 2", {"range": [NEXT, NEXT]}),
    ("image_encoder_job", {}),
    ("embeddings_job", {"range": [DAY, DAY]}),
    ("embeddings_job day 2", {"range": [NEXT, NEXT]}),
    ("shards_job", {"partition_key": DAY}),
    ("shards_job day 2", {"partition_key": NEXT}),
    ("nightly_training_job", {}),
]


def make_lake(base: Path, scale: int) -> dict:
    from platform_assets.lib.lake_store import LakeStore
    from platform_assets.lib.simulator import LakeScale, generate_lake

    lake = base / f"scale-{scale}x"
    store = LakeStore(str(lake / "lake"))
    if not store.exists("_simulator/manifest.json"):
        (lake / "lake").mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        generate_lake(
            store,
            f"sqlite:///{lake / 'app.db'}",
            LakeScale(
                users=BASE_USERS * scale,
                photos=3 * BASE_PHOTOS * scale,
                days=3,
                events_per_day=BASE_EVENTS * scale,
                files_per_hour=4,
                image_width=640,
                image_height=480,
                start_date=DAY,
                seed=scale,
            ),
        )
        print(f"{scale}x: generated the lake in {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads(store.read_bytes("_simulator/manifest.json"))


def child(args) -> None:
    """Run one job on the instance under DAGSTER_HOME; print what it cost and wrote."""
    import dagster as dg

    from platform_assets.definitions import defs
    from platform_assets.defs.partitions import range_tags

    how = json.loads(args.how)
    kwargs: dict = {}
    if "partition_key" in how:
        kwargs["partition_key"] = how["partition_key"]
    if "range" in how:
        kwargs["tags"] = range_tags(*how["range"])
    if "selection" in how:
        kwargs["asset_selection"] = [dg.AssetKey.from_user_string(k) for k in how["selection"]]
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    started, cpu = time.perf_counter(), time.process_time()
    with dg.DagsterInstance.get() as instance:
        job = args.child.split(" ")[0]
        result = defs().resolve_job_def(job).execute_in_process(run_config=quiet, instance=instance, **kwargs)
        assert result.success, f"{args.child} failed"
        steps = {}
        for event in result.all_events:
            if event.event_type_value == "STEP_SUCCESS":
                steps[event.step_key] = round(event.event_specific_data.duration_ms / 1000, 2)
    assets = {}
    for mat in result.get_asset_materialization_events():
        meta = mat.materialization.metadata
        name = mat.materialization.asset_key.to_user_string()
        assets[name] = {
            "rows": meta["dagster/row_count"].value if "dagster/row_count" in meta else None,
            "bytes": next((meta[k].value for k in ("bytes", "size_bytes", "total_bytes") if k in meta), None),
        }
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "cpu": time.process_time() - cpu + children.ru_utime + children.ru_stime,
                "peak_mb": peak_rss_mb(),
                "workers_mb": children.ru_maxrss / 1024,
                "steps": steps,
                "assets": assets,
            }
        )
    )


def run_scale(base: Path, scale: int, size: int, reuse_encoder: bool, only: list[str]) -> list[tuple[str, dict]]:
    manifest = make_lake(base, scale)
    lake = base / f"scale-{scale}x"
    if only:  # the last run's instance, lake and registry, as its jobs left them
        *_, run_dir = sorted(lake.glob(f"run-{size}px-*")) or [None]
        if run_dir is None:
            raise SystemExit(f"--only: no earlier {size} px run at {scale}x to rerun jobs on; run without --only first")
    else:
        for old in lake.glob("run-*"):  # a 100x run holds 17 GB (registry, cache, remote): keep one
            subprocess.run(["rm", "-rf", str(old)], check=True)
        run_dir = lake / f"run-{size}px-{int(time.time())}"
        (run_dir / "home").mkdir(parents=True)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(run_dir / "home"),
        "PLATFORM_ASSETS_LAKE": str(lake / "lake"),
        "PLATFORM_ASSETS_APP_DB_URL": f"sqlite:///{lake / 'app.db'}",
        "PLATFORM_ASSETS_WORKSPACE": str(run_dir / "registry"),
        "PLATFORM_ASSETS_DVC_REMOTE": str(run_dir / "dvc-remote"),
        "PLATFORM_ASSETS_IMAGE_SIZE": str(size),
    }
    encoder = lake / "lake" / "embeddings" / "image_encoder"
    reuse = reuse_encoder and encoder.exists() and not only
    if reuse:
        subprocess.run(["mv", str(encoder), str(run_dir / "encoder")], check=True)
    for prefix in () if only else ("staging", "features", "embeddings"):  # every run starts from the raw lake
        subprocess.run(["rm", "-rf", str(lake / "lake" / prefix)], check=True)
    if reuse:
        encoder.parent.mkdir(parents=True)
        subprocess.run(["mv", str(run_dir / "encoder"), str(encoder)], check=True)
    done = []
    for job, how in JOBS:
        if (reuse and job == "image_encoder_job") or (only and job not in only):
            continue
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.scale", "--child", job, "--how", json.dumps(how)],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        if out.returncode:
            raise SystemExit(f"{scale}x {job} failed:\n{out.stderr[-4000:]}")
        done.append((job, json.loads(out.stdout.strip().splitlines()[-1])))
        print(f"{scale}x {job}: {done[-1][1]['seconds']:.1f} s {json.dumps(done[-1][1])}", flush=True)
    per_day = {"lines": manifest["days"][DAY]["lines"], "photos": manifest["scale"]["photos"] // 3}
    return [("_lake", per_day), *done]


def main() -> None:
    parser = bench_parser("how")
    parser.add_argument("--scales", default="1,10")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--reuse-encoder", action="store_true", help="skip image_encoder_job: keep the last one")
    parser.add_argument("--only", default="", help="rerun these jobs (comma-separated) on each scale's last run")
    args = parser.parse_args()
    if args.child:
        return child(args)
    base = Path(args.base)
    scales = [int(s) for s in args.scales.split(",")]
    only = [j for j in args.only.split(",") if j]
    if unknown := set(only) - {job for job, _ in JOBS}:
        raise SystemExit(f"--only: no job {sorted(unknown)}; the jobs are {[job for job, _ in JOBS]}")
    results = {s: run_scale(base, s, args.size, args.reuse_encoder, only) for s in scales}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.size} px; one day per scale")
    print("| scale | lines | photos | job | wall s | CPU s | peak RSS (run) | largest worker | cost per unit |")
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for s in scales:
        lake, *jobs = results[s]
        lines, photos = lake[1]["lines"], lake[1]["photos"]
        for job, r in jobs:
            unit = (f"{r['seconds'] / (photos / 1000):.2f} s / 1,000 photos" if job.split()[0] in PHOTO_JOBS
                    else f"{r['seconds'] / (lines / 1e6):.2f} s / 1 M lines")  # fmt: skip
            print(f"| {s}x | {lines:,} | {photos:,} | {job} | {r['seconds']:.1f} | {r['cpu']:.1f} | "
                  f"{r['peak_mb']:,.0f} MB | {r['workers_mb']:,.0f} MB | {unit} |")  # fmt: skip
    print()
    print("| scale | job | step seconds | asset: rows, bytes |")
    print("| ---: | --- | --- | --- |")
    for s in scales:
        for job, r in results[s][1:]:
            steps = ", ".join(f"{k} {v}" for k, v in r["steps"].items())
            written = "; ".join(
                f"{name}: {a['rows'] if a['rows'] is not None else '-'}, {a['bytes'] if a['bytes'] is not None else '-'}"
                for name, a in r["assets"].items()
            )
            print(f"| {s}x | {job} | {steps} | {written} |")
    for lo, hi in zip(scales, scales[1:]):  # each scale over the one below it, job by job
        print()
        below = dict(results[lo][1:])
        for job, b in results[hi][1:]:
            if job not in below:
                continue
            a, per = below[job], "photos" if job.split()[0] in PHOTO_JOBS else "lines"
            ua, ub = results[lo][0][1][per], results[hi][0][1][per]
            print(f"{job}: cost per unit {hi}x / {lo}x = {(b['seconds'] / ub) / (a['seconds'] / ua):.2f}, "
                  f"peak RSS {b['peak_mb'] / a['peak_mb']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()

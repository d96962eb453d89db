"""Benchmark: building `training_set` (the point-in-time as-of join over all photos) with the
platform's DuckDB ASOF join vs pandas `merge_asof` vs Feast's `get_historical_features`
(file offline store), on the same inputs in the same run, with identical values checked.

    .venv/bin/python -m benchmarks.training_set [--events 10000000] [--repeats 3]

Inputs are prepared once from the benchmark lake (events, user_activity, labels, photo
features as Parquet). Each implementation is timed from those Parquet files to its result
in memory (reading the files included, as Feast's file offline store reads its source inside
`get_historical_features`); writing the result is not timed. Each runs in its own process so
peak RSS is its own; Feast and pandas run from `benchmarks/.venv-feast`, an environment of
their own that this script creates with the pinned versions of `FEAST_PINS`, not from the
platform's.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from benchmarks.common import bench_parser, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
FEAST_VENV = ROOT / "benchmarks" / ".venv-feast"
# The peers' versions, pinned so a rerun measures the same Feast (pandas < 3 is Feast 0.67's
# bound; dask runs its file offline store).
FEAST_PINS = ["feast==0.67.0", "pandas==2.3.3", "pyarrow==26.0.1", "dask[dataframe]==2026.11.0"]
AUTHOR_COLUMNS = [
    "author_logins_today",
    "author_likes_given_7d",
    "author_likes_received_7d",
    "author_posts_30d",
    "author_sessions_7d",
]


def prepare(events: int, base: Path) -> Path:
    """Materialize the training-set inputs from the benchmark lake (not timed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.events_transform import lake_for
    from platform_assets.defs.resources import AppDatabaseResource
    from platform_assets.lib.features.labels import compute_labels
    from platform_assets.lib.features.photo_features import compute_photo_features
    from platform_assets.lib.features.user_activity import compute_user_activity
    from platform_assets.lib.lake_layout import list_log_days
    from platform_assets.lib.staging.app_tables import stage
    from platform_assets.lib.staging.events import transform_events
    from platform_assets.lib.staging.log_lines import read_log_lines

    out = base / f"training-inputs-{events}"
    if (out / "done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    store = lake_for(events, base)
    db = AppDatabaseResource(url=f"sqlite:///{base / f'app-{events}-7.db'}")  # lake_for's 7-day lake
    users = stage(db.read_table("users"), "users").valid
    photos = stage(db.read_table("photos"), "photos", users).valid
    days, _ = list_log_days(store)
    t = time.perf_counter()
    tables = []
    for day, d in days.items():
        with transform_events(read_log_lines(store, [f.key for f in d.files]), date.fromisoformat(day)) as result:
            tables.extend(result.events)
    events_table = pa.concat_tables(tables)
    start = datetime.fromisoformat(min(days)).replace(tzinfo=UTC)
    end = datetime.fromisoformat(max(days)).replace(tzinfo=UTC) + timedelta(days=1)
    activity = compute_user_activity(events_table, photos, users, start, end)
    labels = compute_labels(photos, events_table.to_batches(), start, end)
    print(f"prepared inputs in {time.perf_counter() - t:.0f}s: {activity.num_rows} user_activity rows", flush=True)
    pq.write_table(activity, out / "user_activity.parquet")
    pq.write_table(labels, out / "labels.parquet")
    pq.write_table(compute_photo_features(photos, users), out / "photo_features.parquet")
    (out / "range.json").write_text(json.dumps({"start": start.isoformat(), "end": end.isoformat()}))
    (out / "done").write_text("")
    return out


def run_platform(inputs: Path, result: Path) -> dict[str, float]:
    """Seconds from the Parquet files to the training set (like the peers), and its two parts."""
    import pyarrow.parquet as pq

    from platform_assets.lib.features.training_set import compute_training_set

    span = json.loads((inputs / "range.json").read_text())
    t = time.perf_counter()
    tables = [pq.read_table(inputs / f"{n}.parquet") for n in ("photo_features", "labels", "user_activity")]
    read = time.perf_counter()
    out = compute_training_set(*tables, datetime.fromisoformat(span["start"]), datetime.fromisoformat(span["end"]))
    done = time.perf_counter()
    pq.write_table(out.select(["photo_id", *AUTHOR_COLUMNS, "popularity_score"]).sort_by("photo_id"), result)
    return {"seconds": done - t, "read_seconds": read - t, "join_seconds": done - read}


def child(impl: str, inputs: Path, out_dir: Path) -> dict:
    python = str(FEAST_VENV / "bin" / "python") if impl != "platform" else sys.executable
    script = [python, "-m", "benchmarks.training_set" if impl == "platform" else "benchmarks.training_set_peers"]
    proc = subprocess.run(
        [*script, "--child", impl, "--inputs", str(inputs), "--out", str(out_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode:
        raise SystemExit(f"{impl} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_feast_env() -> None:
    """`benchmarks/.venv-feast` with `FEAST_PINS`, rebuilt when the pins changed."""
    stamp = FEAST_VENV / "pins.txt"
    if not (FEAST_VENV / "bin" / "feast").exists() or not stamp.exists() or stamp.read_text() != "\n".join(FEAST_PINS):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(FEAST_VENV)], check=True)
        subprocess.run([str(FEAST_VENV / "bin" / "pip"), "install", "-q", *FEAST_PINS], check=True)
        stamp.write_text("\n".join(FEAST_PINS))


def identical(out_dir: Path) -> dict[str, dict]:
    """Per peer: are its values equal to the platform's on every row it returned, and how many
    of the platform's rows it did not return (Feast drops entity rows that share a user and
    a timestamp)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ref = pq.read_table(out_dir / "platform.parquet")
    report = {}
    for impl in ("pandas", "feast"):
        peer = pq.read_table(out_dir / f"{impl}.parquet").select(ref.column_names).cast(ref.schema)
        mine = ref.filter(pc.is_in(ref["photo_id"], peer["photo_id"]))
        report[impl] = {"values_identical": mine.equals(peer), "rows_missing": ref.num_rows - peer.num_rows}
    return report


def main() -> None:
    args = bench_parser("inputs", "out").parse_args()
    if args.child:
        timed = run_platform(Path(args.inputs), Path(args.out) / "platform.parquet")
        print(json.dumps({**timed, "peak_mb": peak_rss_mb()}))
        return

    inputs = prepare(args.events, Path(args.base))
    ensure_feast_env()
    out_dir = Path(args.base) / f"training-out-{args.events}"
    out_dir.mkdir(exist_ok=True)
    runs: dict[str, list[dict]] = {"platform": [], "pandas": [], "feast": []}
    for i in range(args.repeats):
        for impl in runs:
            runs[impl].append(child(impl, inputs, out_dir))
            print(f"repeat {i + 1} {impl}: {runs[impl][-1]}", flush=True)
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    import pyarrow.parquet as pq

    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
                "peers": FEAST_PINS,
                "photos_in_training_set": pq.read_metadata(out_dir / "platform.parquet").num_rows,
                "user_activity_rows": pq.read_metadata(inputs / "user_activity.parquet").num_rows,
                "identical_values": identical(out_dir),
                "median_seconds": {k: round(v, 3) for k, v in med.items()},
                "platform_median_read_and_join_seconds": [
                    round(statistics.median(r[part] for r in runs["platform"]), 3)
                    for part in ("read_seconds", "join_seconds")
                ],
                "speedup_vs_pandas": round(med["pandas"] / med["platform"], 1),
                "speedup_vs_feast": round(med["feast"] / med["platform"], 1),
                "peak_rss_mb": {k: round(max(r["peak_mb"] for r in v)) for k, v in runs.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

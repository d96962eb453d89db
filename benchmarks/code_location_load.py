"""Benchmark: loading the code location in a fresh process, as every run launch, code server
and CLI call does — ours (`defs/` scanned as a package) vs `dg.load_from_defs_folder` on the
same folder, which also snapshots every installed component library for the UI's catalogue.

    .venv/bin/python -m benchmarks.code_location_load [--repeats 5]

Each repeat runs both, alternating, in new interpreters (imports included) and times the
whole process; prints the medians and their ratio. Both must yield the same assets, jobs,
sensors, schedules and resources (checked once).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from benchmarks.common import bench_parser

LOADERS = {
    "package scan (ours)": "import platform_assets.definitions as d; x = d.defs()",
    "load_from_defs_folder": (  # what definitions.py did before, resources merged in the same way
        "import dagster as dg, platform_assets.defs as p; from pathlib import Path; "
        "from platform_assets.defs.resources import build_resources; "
        "x = dg.Definitions.merge(dg.load_from_defs_folder(path_within_project=Path(p.__file__).parent), "
        "dg.Definitions(resources=build_resources()))"
    ),
}
SUMMARY = (
    "; r = x.get_repository_def(); import json; print(json.dumps([sorted(k.to_user_string() for k in "
    "r.asset_graph.get_all_asset_keys()), sorted(j.name for j in r.get_all_jobs()), sorted(s.name for s in "
    "r.sensor_defs), sorted(s.name for s in r.schedule_defs), sorted(x.resources or {})]))"
)


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    args = bench_parser().parse_args()
    summaries = [
        json.loads(subprocess.run([sys.executable, "-c", code + SUMMARY], check=True, capture_output=True).stdout)
        for code in LOADERS.values()
    ]
    assert summaries[0] == summaries[1], "the two loaders disagree"
    seconds: dict[str, list[float]] = {name: [] for name in LOADERS}
    for _ in range(args.repeats):
        for name, code in LOADERS.items():
            seconds[name].append(timed(code))
    medians = {name: round(statistics.median(s), 2) for name, s in seconds.items()}
    print(
        json.dumps(
            {
                "repeats": args.repeats,
                "median_seconds": medians,
                "all_seconds": {n: [round(v, 2) for v in s] for n, s in seconds.items()},
                "folder_over_ours": round(medians["load_from_defs_folder"] / medians["package scan (ours)"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

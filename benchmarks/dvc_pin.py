"""Benchmark: pinning a partition of new shards with DVC vs `md5sum` of the same bytes, and
re-pinning unchanged shards.

    .venv/bin/python benchmarks/dvc_pin.py [--mb 512] [--repeats 3] [--cache-type hardlink]

Each repeat makes a fresh git + DVC repository, writes `--mb` of new shard files (64 MB each)
under data/shards/dt=…, then times `pin` (dvc add through the platform) and `md5sum` over
the same files in the same run, then `pin` again with nothing changed (DVC's state cache).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import bench_parser  # noqa: E402
from platform_assets.lib.dvc_pin import pin  # noqa: E402

DVC = str(Path(sys.executable).with_name("dvc"))


def fresh_repo(base: Path, cache_type: str) -> Path:
    repo = Path(tempfile.mkdtemp(dir=base))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=repo, check=True)
    if cache_type != "default":
        subprocess.run([DVC, "config", "cache.type", cache_type], cwd=repo, check=True)
    return repo


def main() -> None:
    parser = bench_parser()
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--cache-type", default="default", help="DVC cache.type: default (reflink,copy), hardlink, ...")
    args = parser.parse_args()
    base = Path(args.base)
    base.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[float]] = {"pin_new": [], "md5sum": [], "repin_unchanged": []}
    for _ in range(args.repeats):
        repo = fresh_repo(base, args.cache_type)
        shards = repo / "data" / "shards" / "dt=2026-11-01"
        shards.mkdir(parents=True)
        files = []
        for i in range(max(1, args.mb // 64)):
            path = shards / f"shard-{i:05d}.parquet"
            path.write_bytes(os.urandom(64 * 2**20))
            files.append(str(path))
        subprocess.run(["sync"], check=True)
        t = time.perf_counter()
        subprocess.run(["md5sum", *files], stdout=subprocess.DEVNULL, check=True)
        runs["md5sum"].append(time.perf_counter() - t)
        t = time.perf_counter()
        pin(shards)
        runs["pin_new"].append(time.perf_counter() - t)
        t = time.perf_counter()
        pin(shards)
        runs["repin_unchanged"].append(time.perf_counter() - t)
        shutil.rmtree(repo, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "mb": args.mb, "cache_type": args.cache_type,
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "pin_vs_md5sum": round(med["pin_new"] / med["md5sum"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()

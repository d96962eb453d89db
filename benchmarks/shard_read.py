"""Benchmark: reading training samples with `ShardDataset` vs WebDataset and MosaicML
Streaming, each over the same samples in its own format written by its own writer, in the
same run.

    .venv/bin/python -m benchmarks.shard_read [--samples 20000] [--repeats 3]

One epoch, one reader process each (no DataLoader workers), shuffle buffer 2048 for ours and
WebDataset, MosaicML Streaming's own shuffle. The peers run from `benchmarks/.venv-peers`
(created by this script: MosaicML Streaming imports torchvision, which needs torch 2.14.1).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.common import bench_parser, peak_rss_mb
from benchmarks.shard_write import samples
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.shards.reader import ShardDataset, shard_paths
from platform_assets.lib.shards.writer import write_shards

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "benchmarks" / ".venv-peers"


def ensure_peers() -> None:
    if not (PEERS / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run(
            [
                str(PEERS / "bin" / "pip"),
                "install",
                "-q",
                "torch==2.14.1",
                "torchvision==0.29.1",
                "mosaicml-streaming",
                "webdataset",
                "pyarrow",
            ],
            check=True,
        )


def ours(directory: Path, buffer: int) -> dict:
    t = time.perf_counter()
    n = sum(1 for _ in ShardDataset(shard_paths([directory]), seed=0, shuffle_buffer=buffer))
    return {"samples": n, "samples_per_second": n / (time.perf_counter() - t), "peak_mb": peak_rss_mb()}


def main() -> None:
    parser = bench_parser("dir")
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(ours(Path(args.dir), 2048)))
        return
    base = Path(args.base) / f"read-{args.samples}"
    source = base / "source.parquet"
    if not source.exists():
        base.mkdir(parents=True, exist_ok=True)
        table = samples(args.samples)
        pq.write_table(table, source)
        write_shards(LakeStore(str(base)), "ours", table, 128 * 2**20)
    ensure_peers()
    runs: dict[str, list[dict]] = {"platform": [], "webdataset": [], "mds": []}
    for _ in range(args.repeats):
        for impl in runs:
            if impl == "platform":
                cmd = [sys.executable, "-m", "benchmarks.shard_read", "--child", "x", "--dir", str(base / "ours")]
            else:
                cmd = [
                    str(PEERS / "bin" / "python"),
                    "-m",
                    "benchmarks.shard_read_peers",
                    "--impl",
                    impl,
                    "--source",
                    str(source),
                    "--out",
                    str(base / impl),
                ]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode:
                raise SystemExit(f"{impl} failed:\n{proc.stderr[-3000:]}")
            runs[impl].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(impl, runs[impl][-1], flush=True)
    med = {k: statistics.median(r["samples_per_second"] for r in v) for k, v in runs.items()}
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "samples": args.samples,
                "samples_per_second": {k: round(v) for k, v in med.items()},
                "vs_faster_peer": round(med["platform"] / max(med["webdataset"], med["mds"]), 2),
                "samples_read": {k: v[0]["samples"] for k, v in runs.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Benchmark: training-shard writing speed vs this disk's sequential write bandwidth.

    .venv/bin/python -m benchmarks.shard_write [--samples 20000] [--repeats 3]

Writes the same samples table (the real shard schema, 3x64x64 pixels per sample) with the
platform's shard writer, and measures `dd` writing the same number of bytes with fdatasync
into the same directory in the same run. Prints MB/s of each and the ratio (goal: >= 50 %).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.common import bench_parser
from platform_assets.lib.images.sizes import DEFAULT_IMAGE_SIZE
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.shards.samples import TABULAR, sample_schema
from platform_assets.lib.shards.writer import write_shards
from platform_assets.lib.simulator.images import CLASSES, STYLES, render

SCHEMA = sample_schema(DEFAULT_IMAGE_SIZE, 128, 384)
IMAGE = SCHEMA.field("image").type


def samples(n: int) -> pa.Table:
    rng = np.random.default_rng(0)
    base = [render(rng, CLASSES[i % 6], STYLES[i % 4]).transpose(2, 0, 1) for i in range(min(n, 512))]
    # every augmented view is unique: perturb each sample's pixels so no two are equal
    pixels = [
        (base[i % len(base)] ^ rng.integers(0, 4, IMAGE.byte_width, dtype=np.uint8).reshape(base[0].shape)).tobytes()
        for i in range(n)
    ]
    fixed = lambda d: pa.FixedSizeListArray.from_arrays(pa.array(rng.random(n * d, dtype=np.float32)), d)  # noqa: E731
    return pa.table(
        [
            pa.array(np.arange(n, dtype=np.int64)),
            pa.array(np.zeros(n, np.int16)),
            pa.array(np.full(n, 1_700_000_000_000_000), pa.timestamp("us", tz="UTC")),
            pa.array(rng.random(n, dtype=np.float32)),
            pa.array(pixels, IMAGE),
            fixed(128),
            fixed(384),
            pa.array(["a title"] * n),
            fixed(len(TABULAR)),
            fixed(len(TABULAR)),
        ],
        schema=SCHEMA,
    )


def main() -> None:
    parser = bench_parser()
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    table = samples(args.samples)
    base = Path(tempfile.mkdtemp(dir=args.base if Path(args.base).exists() else None))
    try:
        writer, disk = [], []
        for i in range(args.repeats):
            store = LakeStore(str(base / f"w{i}"))
            t = time.perf_counter()
            shards = write_shards(store, "shards/dt=2026-11-01", table, 128 * 2**20)
            os.sync()
            seconds = time.perf_counter() - t
            written = sum(s.bytes for s in shards)
            writer.append(written / 2**20 / seconds)
            t = time.perf_counter()
            subprocess.run(
                [
                    "dd",
                    "if=/dev/zero",
                    f"of={base / f'dd{i}'}",
                    "bs=1M",
                    f"count={max(1, written // 2**20)}",
                    "conv=fdatasync",
                    "status=none",
                ],
                check=True,
            )
            disk.append(max(1, written // 2**20) / (time.perf_counter() - t))
        med_w, med_d = statistics.median(writer), statistics.median(disk)
        print(
            json.dumps(
                {
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                    "samples": args.samples,
                    "shard_bytes": written,
                    "shards": len(shards),
                    "uncompressed_table_mb": round(table.nbytes / 2**20),
                    "mb_per_second": {"shard_writer": round(med_w, 1), "dd_sequential": round(med_d, 1)},
                    "ratio": round(med_w / med_d, 2),
                },
                indent=2,
            )
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

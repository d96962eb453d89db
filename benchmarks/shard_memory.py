"""Benchmark: peak memory of writing one day's training shards, streamed vs the whole day held.

    .venv/bin/python -m benchmarks.shard_memory [--photos 500,2000,8000] [--size 224] [--repeats 1]

A lake of photo-sized JPEGs (640x480, the simulator's renderer, ~45 KB each) and a day of
training rows over them; each run is a fresh process that writes the day's shards (2 views,
128 MB target shards) at `--size` px and reports its peak RSS (VmHWM) and the largest of its
decode workers'. Two ways, in the same run on the same lake:
- streamed: `write_samples`, as `training_shards` runs it (JPEGs read, decoded and augmented
  `batch_size` photos at a time; each shard written once its rows are there);
- whole day (the baseline, the way the asset worked before): every JPEG of the day read, every
  view augmented into one array, then the shards written from it.
Both write the same bytes (checked). Peak memory should not grow with the day when streamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.common import bench_parser, peak_rss_mb
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.shards.samples import TABULAR, Augmentation
from platform_assets.lib.shards.selection import Selection
from platform_assets.lib.shards.vectors import VectorCursor

TARGET_BYTES = 128 * 2**20
DISTINCT = 256  # rendered JPEGs, each stored under many keys: generating 8,000 would take minutes


def make_lake(base: Path, photos: int) -> LakeStore:
    from platform_assets.lib.simulator.images import CLASSES, STYLES, encode_jpeg, render

    store = LakeStore(str(base / "lake"))
    rng = np.random.default_rng(0)
    jpegs = [encode_jpeg(render(rng, CLASSES[i % 6], STYLES[i % 4], 640, 480)) for i in range(DISTINCT)]
    for i in range(photos):
        if not store.exists(f"images/{i}.jpg"):
            store.write_bytes(f"images/{i}.jpg", jpegs[i % DISTINCT])
    return store


def day(photos: int) -> Selection:
    rng = np.random.default_rng(1)
    rows = pa.table(
        {
            "photo_id": pa.array(np.arange(photos), pa.int64()),
            "posted_at": pa.array(np.full(photos, 1_700_000_000_000_000), pa.timestamp("us", tz="UTC")),
            "popularity_score": pa.array(rng.random(photos)),
            "title": pa.array(["a dog on the beach at night"] * photos),
            "image_key": pa.array([f"images/{i}.jpg" for i in range(photos)]),
            **{c: pa.array(rng.random(photos)) for c in TABULAR},
        }
    )
    ids = np.arange(photos)
    image, title = rng.random((photos, 128)), rng.random((photos, 384))
    return Selection(rows, VectorCursor.of_arrays(ids, image), VectorCursor.of_arrays(ids, title), 0)


def whole_day(selected: Selection, store: LakeStore, out: LakeStore, aug: Augmentation, device, workers) -> list:
    """The baseline: the day's JPEGs read at once, every view built, then written."""
    from platform_assets.lib.images.batches import image_batches
    from platform_assets.lib.shards.samples import (
        IMAGE,
        IMAGE_POSITION,
        VECTORS,
        sample_columns,
        sample_pixels,
        sample_schema,
    )
    from platform_assets.lib.shards.writer import GatheredColumn, StreamedColumn, write_shards

    rows = selected.rows
    blobs = store.read_many(rows["image_key"].to_pylist())
    images = image_batches(blobs, aug.image_size, 256, device, workers)
    pixels = np.concatenate(list(sample_pixels(rows["photo_id"].to_pylist(), images, aug, device)))
    columns = sample_columns(rows, aug)
    schema = sample_schema(aug.image_size, selected.image_vectors.dim, selected.title_vectors.dim)
    ids = rows["photo_id"].to_numpy()
    for (name, position), vectors in zip(VECTORS.items(), (selected.image_vectors, selected.title_vectors)):
        whole = GatheredColumn(schema.field(name), position, ids, vectors, aug.views).rows(0, columns.num_rows)
        columns = columns.add_column(position - 1, schema.field(name), whole)  # before `image` goes in
    field = schema.field(IMAGE)
    return write_shards(
        out, "day", columns, TARGET_BYTES, streamed=StreamedColumn(field, IMAGE_POSITION, iter([pixels]))
    )


def child(args) -> None:
    import torch

    from platform_assets.lib.shards.samples import write_samples

    base, photos = Path(args.base), int(args.photos_n)
    store, out = LakeStore(str(base / "lake")), LakeStore(str(base / f"out-{args.child}-{photos}"))
    selected, aug, cpu = day(photos), Augmentation(2, 0, args.size), torch.device("cpu")
    started = time.perf_counter()
    if args.child == "streamed":
        shards = write_samples(selected, store, out, "day", aug, device=cpu, target_bytes=TARGET_BYTES)
    else:
        shards = whole_day(selected, store, out, aug, cpu, None)
    seconds = time.perf_counter() - started
    workers_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    digest = hashlib.sha256("".join(s.sha256 for s in shards).encode()).hexdigest()[:16]
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "workers_mb": workers_mb, "shards": digest}))


def main() -> None:
    parser = bench_parser("photos_n")
    parser.add_argument("--photos", default="500,2000,8000")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    if args.child:
        return child(args)
    base = Path(args.base) / "shard-memory"
    sizes = [int(n) for n in args.photos.split(",")]
    make_lake(base, max(sizes))
    results: dict[tuple[str, int], list[dict]] = {}
    for _ in range(args.repeats):
        for n in sizes:
            for way in ("streamed", "whole-day"):
                done = subprocess.run(
                    [sys.executable, "-m", "benchmarks.shard_memory", "--child", way, "--photos_n", str(n),
                     "--base", str(base), "--size", str(args.size)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                results.setdefault((way, n), []).append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.size} px, 2 views, 640x480 JPEGs; "
          f"median of {args.repeats}")  # fmt: skip
    print("| photos | way | seconds | photos/s | peak RSS (main) | largest decode worker | shards sha |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for n in sizes:
        for way in ("streamed", "whole-day"):
            runs = sorted(results[(way, n)], key=lambda r: r["peak_mb"])
            r = runs[len(runs) // 2]
            print(f"| {n:,} | {way} | {r['seconds']:.1f} | {n / r['seconds']:.0f} | {r['peak_mb']:,.0f} MB | "
                  f"{r['workers_mb']:,.0f} MB | {r['shards']} |")  # fmt: skip
    for way in ("streamed", "whole-day"):
        peaks = [sorted(r["peak_mb"] for r in results[(way, n)])[len(results[(way, n)]) // 2] for n in sizes]
        print(f"{way}: peak at {sizes[-1]:,} photos / at {sizes[0]:,} = {peaks[-1] / peaks[0]:.2f}x")


if __name__ == "__main__":
    main()

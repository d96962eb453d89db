"""Benchmark: `diff_versions` of two 30-day windows that differ in one day, against reading the
whole window with the same reader.

    .venv/bin/python -m benchmarks.data_diff [--photos 500] [--days 30] [--repeats 3] [--remote s3]

A registry holds `--days` daily partitions of synthetic samples in the shards' real format and
at the demo's sizes (`--photos` photos a day, 2 views, 64 px images, 256 + 384-wide embeddings,
10 features; 500 photos a day is the demo lake's 1,500 photos over 3 days), seeded in bulk (one
`dvc commit`, one push, one git commit): revision A. Then one day is rewritten with 5 % of its
photos' features changed and pinned: revision B. Timed, medians of `--repeats`: the diff (DVC
cache warm), the diff with an empty cache and shard cache (every changed byte from the remote),
and reading every partition of the window sample by sample (what a diff without the `.dvc`
hashes would cost). The DVC remote is a directory, or with `--remote s3` a bucket on moto's S3
API server, run in a process of its own on loopback so its threads do not share the
benchmark's interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import boto3
import numpy as np
import pyarrow as pa

from platform_assets.lib.diff.objects import ObjectSource
from platform_assets.lib.diff.report import diff_versions
from platform_assets.lib.diff.samples import read_partition
from platform_assets.lib.diff.versions import pinned_partitions
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.registry import Registry, shard_dir, write_stub
from platform_assets.lib.shards.samples import TABULAR, sample_schema
from platform_assets.lib.shards.writer import write_shards
from platform_assets_tests.support.s3_server import make_bucket, s3_server

IMAGE_SIZE, IMAGE_DIM, TITLE_DIM, VIEWS = 64, 256, 384, 2
TARGET_BYTES = 8 * 2**20


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.astype(np.float32).reshape(-1)), values.shape[1])


def day_samples(day: int, photos: int, changed_share: float = 0.0) -> pa.Table:
    """One day's samples, (photo_id, view) ordered; `changed_share` of the photos get new features."""
    rng = np.random.default_rng(day)
    n = photos * VIEWS
    ids = np.repeat(day * 1_000_000 + np.arange(photos, dtype=np.int64), VIEWS)
    features = np.repeat(rng.gamma(2.0, 3.0, size=(photos, len(TABULAR))), VIEWS, axis=0)
    if changed_share:
        moved = np.repeat(np.random.default_rng([day, 1]).random(photos) < changed_share, VIEWS)
        features[moved] += 1.0
    mask = (rng.random((n, len(TABULAR))) > 0.1).astype(np.float32)
    pixels = pa.binary(3 * IMAGE_SIZE * IMAGE_SIZE)
    return pa.table(
        [
            pa.array(ids),
            pa.array(np.tile(np.arange(VIEWS, dtype=np.int16), photos)),
            pa.array(np.full(n, day * 86_400_000_000, "datetime64[us]")).cast(pa.timestamp("us", tz="UTC")),
            pa.array(np.repeat(rng.normal(size=photos), VIEWS).astype(np.float32)),
            pa.FixedSizeBinaryArray.from_buffers(pixels, n, [None, pa.py_buffer(rng.bytes(n * pixels.byte_width))]),
            _fixed(np.repeat(rng.normal(size=(photos, IMAGE_DIM)), VIEWS, axis=0)),
            _fixed(np.repeat(rng.normal(size=(photos, TITLE_DIM)), VIEWS, axis=0)),
            pa.array([f"photo {i}" for i in ids]),
            _fixed(features * mask),
            _fixed(mask),
        ],
        schema=sample_schema(IMAGE_SIZE, IMAGE_DIM, TITLE_DIM),
    )


def pin_all(registry: Registry, rels: list[str], message: str) -> str:
    """Pins in bulk (one dvc commit, push and git commit): the benchmark seeds, it does not time pins."""
    for rel in rels:
        write_stub(registry.root, rel)
    registry.dvc("commit", "--force", "--quiet", *(f"{r}.dvc" for r in rels))
    registry.dvc("push", "--quiet")
    registry.git("add", "--", *(f"{r}.dvc" for r in rels))
    registry.git("commit", "-qm", message)
    return registry.head()


BUCKET = "dvc-store"


@contextmanager
def s3_remote() -> Iterator[str]:
    """moto's S3 API server on 127.0.0.1 in a process of its own, with the bucket; yields its endpoint."""
    with s3_server() as endpoint:
        make_bucket(endpoint, BUCKET)
        yield endpoint


def remote_mib(registry: Registry) -> float:
    """What the DVC remote holds (a directory, or the bucket)."""
    if not registry.s3_endpoint_url:
        return sum(f.stat().st_size for f in Path(registry.remote_url).rglob("*") if f.is_file()) / 2**20
    pages = boto3.client("s3", endpoint_url=registry.s3_endpoint_url).get_paginator("list_objects_v2")
    return sum(o["Size"] for page in pages.paginate(Bucket=BUCKET) for o in page.get("Contents", [])) / 2**20


def build(base: Path, photos: int, days: int, s3_endpoint: str | None = None) -> tuple[Registry, str, str, list[str]]:
    remote = f"s3://{BUCKET}/registry" if s3_endpoint else str(base / "remote")
    registry = Registry(base / "registry", remote, s3_endpoint_url=s3_endpoint)
    registry.ensure()
    store = LakeStore(str(registry.root))
    names = [(date(2026, 1, 1) + timedelta(days=i)).isoformat() for i in range(days)]
    for i, day in enumerate(names):
        write_shards(store, shard_dir(day), day_samples(i, photos), TARGET_BYTES)
    a = pin_all(registry, [shard_dir(d) for d in names], f"{days} days")
    middle = days // 2
    write_shards(store, shard_dir(names[middle]), day_samples(middle, photos, 0.05), TARGET_BYTES)
    b = pin_all(registry, [shard_dir(names[middle])], f"{names[middle]} re-pinned")
    return registry, a, b, names


def median_seconds(fn, repeats: int, before=None) -> float:
    times = []
    for _ in range(repeats):
        if before:
            before()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=500, help="photos a day (the demo: 500)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--remote", choices=("directory", "s3"), default="directory", help="where DVC pushes")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="data-diff-"))
    try:
        with s3_remote() if args.remote == "s3" else contextlib.nullcontext() as endpoint:
            measure(base, args, endpoint)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def measure(base: Path, args: argparse.Namespace, s3_endpoint: str | None) -> None:
    """Build the two revisions, check the diff names the one day, time it and print the figures."""
    registry, a, b, names = build(base, args.photos, args.days, s3_endpoint)
    shard_cache = base / "shard-cache"
    diff = diff_versions(registry, a, b, shard_cache)
    changed = [p.day for p in diff.partitions if p.status != "unchanged"]
    assert changed == [names[args.days // 2]], changed

    def empty_caches() -> None:
        shutil.rmtree(registry.cache, ignore_errors=True)
        shutil.rmtree(shard_cache, ignore_errors=True)

    def whole_window() -> None:
        source = ObjectSource.of(registry, shard_cache)
        for md5 in pinned_partitions(registry, b).values():
            read_partition(source, source.partition(md5))

    warm = median_seconds(lambda: diff_versions(registry, a, b, shard_cache), args.repeats)
    window = median_seconds(whole_window, args.repeats)
    cold = median_seconds(lambda: diff_versions(registry, a, b, shard_cache), args.repeats, empty_caches)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}")
    print(
        f"window: {args.days} days x {args.photos} photos x {VIEWS} views; "
        f"the {args.remote} remote holds {remote_mib(registry):.0f} MiB"
    )
    print(f"diff (1 day changed, DVC cache warm): {warm:.2f} s")
    print(f"diff, empty caches (read from the remote): {cold:.2f} s")
    print(f"reading the whole window sample by sample: {window:.2f} s")
    print(f"ratio whole window / diff: {window / warm:.1f}x (cold: {window / cold:.1f}x)")


if __name__ == "__main__":
    main()

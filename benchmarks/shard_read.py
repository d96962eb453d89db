"""Benchmark: reading training samples with `ShardDataset` vs WebDataset and MosaicML
Streaming, each over the same samples in its own format written by its own writer, in the
same run; then streamed from an S3 API server; then how well each order mixes a batch.

    .venv/bin/python -m benchmarks.shard_read [--samples 20000] [--repeats 3]

Local: one epoch, one reader process each (no DataLoader workers): ours in its default epoch
order, WebDataset with a 2,048-sample shuffle buffer, MosaicML Streaming's own shuffle.
Remote: an S3 API server on loopback (moto's server mode) holds ours as DVC objects (pinned by
the registry with the real `dvc push`) and MosaicML's MDS shards; each reads one epoch in a
fresh process into an empty cache directory (ours by partition hash, `remote_shards`; theirs
`StreamingDataset(remote=s3://…)`). The peers run from `benchmarks/.venv-peers` (created by
this script: MosaicML Streaming imports torchvision, which needs torch 2.14.1).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from benchmarks.common import bench_parser, peak_rss_mb
from benchmarks.shard_write import samples
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.registry import Registry, shard_dir
from platform_assets.lib.shards.order import SPAN_SHARDS, WINDOW_BLOCKS, EpochOrder
from platform_assets.lib.shards.reader import ShardDataset, local_shards
from platform_assets.lib.shards.remote import ShardCache, remote_shards
from platform_assets.lib.shards.writer import ROW_GROUP_ROWS, write_shards

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


def ours(shards: list) -> dict:
    t = time.perf_counter()
    n = sum(1 for _ in ShardDataset(shards, seed=0))
    return {"samples": n, "samples_per_second": n / (time.perf_counter() - t), "peak_mb": peak_rss_mb()}


def child(args) -> dict:
    if args.child == "local":
        return ours(local_shards([Path(args.dir)]))
    remote = LakeStore(args.dir, s3_endpoint_url=args.endpoint)
    return ours(remote_shards(remote, [args.partition], ShardCache(Path(args.cache), 2**34)))


def batch_mixing(order: np.ndarray, batch: int = 256) -> dict:
    """How mixed a batch is: the share of samples stored next to each other (in real shards, two
    augmented views of one photo) that land in the same batch — a uniform shuffle gives about
    batch/N — and the mean number of 1,024-sample storage regions a batch draws from."""
    where = np.empty_like(order)
    where[order] = np.arange(len(order)) // batch
    same = float(np.mean(where[:-1] == where[1:]))
    regions = np.mean([len(np.unique(order[i : i + batch] // 1024)) for i in range(0, len(order), batch)])
    return {"adjacent_pairs_in_one_batch": round(same, 4), "storage_regions_per_batch": round(float(regions), 1)}


def buffer_order(shard_rows: list[int], buffer: int, seed: int = 0) -> np.ndarray:
    """The previous reader's order: shards permuted, one seeded shuffle buffer of `buffer` samples."""
    first = np.concatenate([[0], np.cumsum(shard_rows)])
    rng = np.random.default_rng([seed, 0])
    stream = np.concatenate([np.arange(first[i], first[i + 1]) for i in rng.permutation(len(shard_rows))])
    rng, pool, out = np.random.default_rng([seed, 0, 0]), [], []
    for sample in stream.tolist():
        if len(pool) < buffer:
            pool.append(sample)
            continue
        j = int(rng.integers(len(pool)))
        out.append(pool[j])
        pool[j] = sample
    rng.shuffle(pool)
    return np.array(out + pool)


def shuffle_quality(shard_rows: list[int]) -> dict:
    order = EpochOrder(shard_rows, ROW_GROUP_ROWS, WINDOW_BLOCKS, SPAN_SHARDS, seed=0, epoch=0)
    ours_order = np.concatenate(list(order.samples([(0, sum(shard_rows))])))
    return {
        f"ours ({WINDOW_BLOCKS}-block windows)": batch_mixing(ours_order),
        "previous reader (2,048 buffer)": batch_mixing(buffer_order(shard_rows, 2048)),
        "previous reader (4,096 buffer, as training used)": batch_mixing(buffer_order(shard_rows, 4096)),
        "uniform permutation": batch_mixing(np.random.default_rng(0).permutation(sum(shard_rows))),
    }


def pin_remote(base: Path, endpoint: str, ours_dir: Path, mds_dir: Path) -> tuple[str, str]:
    """Our shards pinned to a DVC remote on the S3 server, the MDS shards uploaded beside them."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="bench")
    registry = Registry(base / "registry", "s3://bench/dvc", s3_endpoint_url=endpoint)
    registry.ensure()
    shutil.copytree(ours_dir, registry.root / shard_dir("2026-11-01"))
    md5 = registry.pin(shard_dir("2026-11-01"), "benchmark shards").md5
    for path in mds_dir.iterdir():
        s3.upload_file(str(path), "bench", f"mds/{path.name}")
    return md5, "s3://bench/mds"


def run(cmd: list[str], env: dict | None = None) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    if proc.returncode:
        raise SystemExit(f"{cmd[:4]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peer(impl: str, source: Path, out: Path, *extra: str) -> list[str]:
    cmd = [str(PEERS / "bin" / "python"), "-m", "benchmarks.shard_read_peers", "--impl", impl]
    return [*cmd, "--source", str(source), "--out", str(out), *extra]


def main() -> None:
    parser = bench_parser("dir", "endpoint", "partition", "cache")
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    base = Path(args.base) / f"read-{args.samples}"
    source = base / "source.parquet"
    if not source.exists():
        base.mkdir(parents=True, exist_ok=True)
        table = samples(args.samples)
        pq.write_table(table, source)
        write_shards(LakeStore(str(base)), "ours", table, 128 * 2**20)
    ensure_peers()
    me = [sys.executable, "-m", "benchmarks.shard_read", "--child"]
    local: dict[str, list[dict]] = {"platform": [], "webdataset": [], "mds": []}
    for _ in range(args.repeats):
        local["platform"].append(run([*me, "local", "--dir", str(base / "ours")]))
        for impl in ("webdataset", "mds"):
            local[impl].append(run(peer(impl, source, base / impl)))
        print({k: v[-1] for k, v in local.items()}, flush=True)
    remote: dict[str, list[dict]] = {"platform": [], "mds": []}
    from platform_assets_tests.support.s3_server import s3_server  # moto's server mode: a dev dependency

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's line per request

    with tempfile.TemporaryDirectory(dir=base) as scratch, s3_server() as endpoint:
        md5, mds_url = pin_remote(Path(scratch), endpoint, base / "ours", base / "mds")
        for i in range(args.repeats):
            cache = Path(scratch) / f"cache-{i}"
            remote["platform"].append(
                run(
                    [
                        *me,
                        "remote",
                        "--dir",
                        "s3://bench/dvc",
                        "--endpoint",
                        endpoint,
                        "--partition",
                        md5,
                        "--cache",
                        str(cache),
                    ]
                )
            )
            remote["mds"].append(
                run(peer("mds", source, cache / "mds", "--remote", mds_url), env={"S3_ENDPOINT_URL": endpoint})
            )
            print({k: v[-1] for k, v in remote.items()}, flush=True)
    med = lambda runs: {k: round(statistics.median(r["samples_per_second"] for r in v)) for k, v in runs.items()}  # noqa: E731
    local_med, remote_med = med(local), med(remote)
    rows = [s["samples"] for s in json.loads((base / "ours" / "index.json").read_text())["shards"]]
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "samples": args.samples,
                "local_samples_per_second": local_med,
                "local_vs_faster_peer": round(
                    local_med["platform"] / max(local_med["webdataset"], local_med["mds"]), 2
                ),
                "remote_samples_per_second": remote_med,
                "remote_vs_mds": round(remote_med["platform"] / remote_med["mds"], 2),
                "peak_mb": {k: round(statistics.median(r["peak_mb"] for r in v)) for k, v in remote.items()},
                "samples_read": {
                    **{k: v[0]["samples"] for k, v in local.items()},
                    **{f"remote {k}": v[0]["samples"] for k, v in remote.items()},
                },
                "shuffle": shuffle_quality(rows),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

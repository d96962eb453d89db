"""Benchmark: a backfill of every day from events to pinned shards, launched as the UI launches
one and run by `dagster-daemon`, on the cluster deployment with 1, 2 and 3 Celery workers,
against the same backfill on one host (production: each run's steps in its own subprocesses).

    .venv/bin/python -m benchmarks.cluster_backfill [--days 30] [--workers 0,1,2,3] [--repeats 1]

Each configuration gets a stack of its own (PostgreSQL, the S3 API server, the registry's git
remote; Redis and `platform-assets worker` processes, each with a disk of its own, for the
cluster), the same generated lake, the app database and the image encoder materialized first
(not timed), then one asset backfill: `staging/events` and the feature tables for every day,
the embeddings and the pinned shards for every day whose labels are complete. Timed from the
launch to the backfill's end. Printed per configuration: wall seconds, runs, the steps each
worker ran, the peak RSS of every process (sampled each second: workers, their step
processes, the daemon's run processes), how busy the machine's cores were, and a digest of
what the backfill derived (every feature and embeddings file in the lake, every `.dvc` file
on the registry's main branch) and the id of the model then trained on it (not timed): it must
be the same for every configuration. Staged files that differ are listed too: they follow
each generated lake's landing order.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import psutil

from benchmarks.common import bench_parser
from platform_assets.lib.registry import BRANCH, SHARDS
from platform_assets.lib.simulator import LakeScale
from platform_assets_tests.support.cluster_stack import (
    backfill_days,
    cluster_stack,
    daemon_and_ui,
    lake_digest,
    wait_for_backfill,
    workers_of,
)
from platform_assets_tests.support.helpers import environment, scale_days
from platform_assets_tests.support.production_stack import FAST_EMBEDDINGS, served_environment


def scale(days: int) -> LakeScale:
    """A small lake (60 users, 20 photos and 1,500 events a day): what a backfill's orchestration
    costs, run by run, not the work of a large day."""
    return LakeScale(users=60, photos=20 * days, days=days, events_per_day=1500, files_per_hour=1, seed=11)


class Sampler:
    """Peak RSS of every process this one started (servers, daemon, workers and what they start),
    by command, sampled each second, and the machine's busy CPU time while it runs."""

    def __init__(self) -> None:
        self.peaks: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._cpu = psutil.cpu_times()
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        cpu, wall = psutil.cpu_times(), time.monotonic() - self._started
        busy = (cpu.user + cpu.system + cpu.nice) - (self._cpu.user + self._cpu.system + self._cpu.nice)
        self.cores_busy = busy / wall  # cores' worth of work the machine did while the backfill ran

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for proc in psutil.Process().children(recursive=True):
                try:
                    command, rss = " ".join(proc.cmdline()), proc.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                if rss > self.peaks.get(proc.pid, ("", 0.0))[1]:
                    self.peaks[proc.pid] = (command, rss)

    def by_role(self) -> dict[str, float]:
        """The largest peak of each kind of process."""
        roles = {
            "worker": "platform-assets worker",
            "step process": "multiprocessing",
            "run process": "execute_run",
            "daemon": "dagster-daemon",
            "code server": "api grpc",
            "webserver": "dagster-webserver",
            "postgres": "postgres",
            "s3 server": "moto",
            "redis": "redis-server",
        }
        peaks: dict[str, float] = {}
        for command, rss in self.peaks.values():
            role = next((r for r, marker in roles.items() if marker in command), None)
            if role:
                peaks[role] = max(peaks.get(role, 0.0), rss)
        return {role: round(mb) for role, mb in sorted(peaks.items())}


def registry_digest(remote: str) -> str:
    """sha256 of every shard `.dvc` file on the registry's main branch: the DVC hashes of the
    pins. (A model's own pin differs between stacks by design: its manifest records the registry
    commit and the DVC remote it was trained from.)"""
    with tempfile.TemporaryDirectory() as clone:
        subprocess.run(["git", "clone", "-q", "--branch", BRANCH, remote, clone], check=True)
        files = sorted(p for p in (Path(clone) / SHARDS).glob("*.dvc") if p.is_file())
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.relative_to(clone).as_posix().encode() + path.read_bytes())
        return f"{len(files)} .dvc files {digest.hexdigest()[:16]}"


def model_tags(remote: str) -> list[str]:
    """The model tags on the registry's git remote: a model id per trained model."""
    listed = subprocess.run(["git", "ls-remote", "--tags", remote], capture_output=True, text=True, check=True)
    tags = {line.split("refs/tags/")[1].removesuffix("^{}") for line in listed.stdout.splitlines()}
    return sorted(t for t in tags if t.startswith("popularity-model/"))


def prepare(execute) -> None:
    """What the backfill reads and does not build: the app database's tables, the image encoder."""
    execute("app_db_job")
    execute("image_encoder_job", run_config=FAST_EMBEDDINGS["image_encoder_job"])


def measure(workers: int, lake_scale: LakeScale, tmp: Path) -> dict:
    """One backfill on a new stack: `workers` Celery workers, or 0 for one host."""
    from platform_assets_tests.test_cluster import execute, execute_on_one_host

    days = scale_days(lake_scale)
    with ExitStack() as stack:
        if workers:
            cluster = stack.enter_context(cluster_stack(tmp, lake_scale))
            for n in range(workers):
                cluster.start_worker(f"worker-{n + 1}", "cpu,gpu")  # no GPU here: every worker serves both
            served, run = cluster.served, execute
        else:
            served = stack.enter_context(served_environment(tmp, lake_scale))
            run = execute_on_one_host
        prepare(run)
        ui = stack.enter_context(daemon_and_ui(tmp))
        instance = stack.enter_context(dg.DagsterInstance.get())
        with Sampler() as sampler:
            started = time.monotonic()
            backfill = ui.launch_backfill(backfill_days(days, days[:-1]))
            runs = wait_for_backfill(instance, backfill, 6 * 3600)
            seconds = time.monotonic() - started
        print(f"{workers} workers: backfill of {len(runs)} runs in {seconds:.1f} s", flush=True)
        run("nightly_training_job")  # not timed: the model the backfill's shards give, by id
        steps = Counter(w.split("@")[0] for w in workers_of(instance, runs).values())
        files = lake_digest(served.lake)
        # Staged events follow the lake's landing order, which two generated lakes need not share
        # (docs/BENCHMARKS.md): what must match is everything derived from them.
        derived = {k: v for k, v in files.items() if not k.startswith("staging/")}
        lake = hashlib.sha256(json.dumps(derived, sort_keys=True).encode()).hexdigest()[:16]
        return {
            "lake files": files,  # sha256 by key: names the files that differ between configurations
            "workers": workers,
            "seconds": round(seconds, 1),
            "runs": len(runs),
            "steps by worker": dict(sorted(steps.items())),
            "cores busy": round(sampler.cores_busy, 2),
            "peak RSS MB": sampler.by_role(),
            "lake": lake,
            "registry": registry_digest(served.env["PLATFORM_ASSETS_REGISTRY_GIT_REMOTE"]),
            "model": model_tags(served.env["PLATFORM_ASSETS_REGISTRY_GIT_REMOTE"]),
        }


def main() -> None:
    parser = bench_parser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", default="0,1,2,3", help="worker counts to measure; 0 is one host")
    args = parser.parse_args()
    lake_scale = scale(args.days)
    results: dict[int, list[dict]] = {}
    for _ in range(args.repeats):
        for workers in [int(w) for w in args.workers.split(",")]:
            with tempfile.TemporaryDirectory(dir=args.base if Path(args.base).is_dir() else None) as tmp:
                with environment({"PLATFORM_ASSETS_STEP_REDELIVERY_S": "3600"}):
                    result = measure(workers, lake_scale, Path(tmp))
            print(json.dumps({k: v for k, v in result.items() if k != "lake files"}), flush=True)
            results.setdefault(workers, []).append(result)
    median = {w: sorted(r, key=lambda x: x["seconds"])[len(r) // 2] for w, r in results.items()}
    print(f"\n{args.days}-day backfill, {lake_scale}; median of {args.repeats}, {psutil.cpu_count()} cores")
    baseline = median.get(0) or median[min(median)]
    for workers, result in sorted(median.items()):
        where = "one host" if workers == 0 else f"{workers} worker{'s' * (workers > 1)}"
        print(
            f"{where:>10}: {result['seconds']:7.1f} s  {result['seconds'] / baseline['seconds']:.2f}x  "
            f"{result['runs']} runs  cores busy {result['cores busy']:.2f}  steps {result['steps by worker']}  "
            f"peak RSS {result['peak RSS MB']}"
        )
    digests = {(r["lake"], r["registry"], *r["model"]) for r in median.values()}
    print("same derived files, pins and model everywhere" if len(digests) == 1 else f"DIFFERENT results: {digests}")
    by_config = [r["lake files"] for r in median.values()]
    keys = sorted({k for files in by_config for k in files})
    differ = [k for k in keys if len({files.get(k) for files in by_config}) > 1]
    if differ:
        print(f"lake files that differ ({len(differ)} of {len(keys)}):", *differ[:50], sep="\n  ")


if __name__ == "__main__":
    main()

"""Benchmark: the data registry's cost as history grows, against plain DVC in the same run.

    .venv/bin/python -m benchmarks.dvc_pin [--partitions 10,300,1000,2000] [--repeats 3] [--window 14] [--mb 512]

For each history size N, two repositories hold N pinned daily partitions (two files each):
- platform: `Registry` (wildcard `.gitignore`s, `dvc commit` on a stub `.dvc` file, push, git commit);
- plain DVC: the documented workflow, `dvc add` (one `.gitignore` line per output) + `dvc push` +
  `git commit`.
Then, in each, one new partition is pinned (timed, end to end: hash, cache, remote, commit), and
`dvc status shards` is timed. For the platform it also times restoring a model's window (`--window`
partitions) in a temporary checkout of its tag, verified byte for byte: the library call
(`verify_model`) and the command users run (`platform-assets verify <id>`, a new process). The medians of
`--repeats` runs are printed with the ratios: pin at N / pin at the smallest N, platform / plain DVC.

With data size: a new partition of `--mb` MB (64 MB shard files) pinned into a fresh registry
against `md5sum` of the same files in the same run (DVC reads every byte once and, with the
`reflink,copy` cache type on a filesystem without reflinks, copies it into the cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from benchmarks.common import bench_parser
from platform_assets.lib.model.restore import verify_model
from platform_assets.lib.registry import Registry, dvc_executable, model_dir, model_tag, shard_dir, write_stub

SHARD_BYTES = 64 * 1024
MODEL_ID = "benchmark000"
CLI = str(Path(sys.executable).with_name("platform-assets"))


def write_partition(root: Path, day: str) -> str:
    rel = shard_dir(day)
    (root / rel).mkdir(parents=True, exist_ok=True)
    (root / rel / "shard-00000.parquet").write_bytes(os.urandom(SHARD_BYTES))
    (root / rel / "index.json").write_text(json.dumps({"day": day}))
    return rel


def days(n: int) -> list[str]:
    return [(date(2000, 1, 1) + timedelta(days=i)).isoformat() for i in range(n)]


def run(cwd: Path, *cmd: str) -> None:
    subprocess.run(list(cmd), cwd=cwd, check=True, capture_output=True)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def platform_history(base: Path, n: int, window: int) -> Registry:
    """N partitions pinned the platform's way, seeded in bulk (one dvc commit, one push, one git
    commit), and a model (`MODEL_ID`) whose manifest names the last `window` partitions."""
    registry = Registry(base / "registry", str(base / "remote"))
    registry.ensure()
    rels = [write_partition(registry.root, d) for d in days(n)]
    for rel in rels:
        write_stub(registry.root, rel)
    dvc = dvc_executable()
    run(registry.root, dvc, "commit", "--force", "--quiet", *(f"{r}.dvc" for r in rels))
    run(registry.root, dvc, "push", "--quiet")
    run(registry.root, "git", "add", "-A")
    run(registry.root, "git", "commit", "-qm", f"{n} partitions")
    shards = [
        {
            "day": day,
            "path": shard_dir(day),
            "md5": registry.committed_md5(shard_dir(day)),
            "files": [
                {"name": f.name, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
                for f in sorted((registry.root / shard_dir(day)).iterdir())
            ],
        }
        for day in days(n)[-window:]
    ]
    model = registry.root / model_dir(MODEL_ID)
    model.mkdir(parents=True)
    (model / "manifest.json").write_text(json.dumps({"model_id": MODEL_ID, "shards": shards}))
    tag = model_tag(MODEL_ID)
    registry.pin_model(model_dir(MODEL_ID), tag, "benchmark model", {s["path"]: s["md5"] for s in shards})
    return registry


def verify_command(registry: Registry) -> float:
    """`platform-assets verify <id>` as a user runs it: a new process, the registry from the environment."""
    env = {
        **os.environ,
        "PLATFORM_ASSETS_WORKSPACE": str(registry.root),
        "PLATFORM_ASSETS_DVC_REMOTE": registry.remote_url,
    }
    started = time.perf_counter()
    done = subprocess.run([CLI, "verify", MODEL_ID], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode or not json.loads(done.stdout)["verified"]:
        raise RuntimeError(f"platform-assets verify {MODEL_ID}: {done.stdout}{done.stderr}")
    return seconds


def plain_dvc_history(base: Path, n: int) -> Path:
    repo = base / "plain"
    repo.mkdir()
    dvc = dvc_executable()
    run(repo, "git", "init", "-q")
    run(repo, dvc, "init", "-q")
    run(repo, dvc, "remote", "add", "-d", "storage", str(base / "plain-remote"))
    rels = [write_partition(repo, d) for d in days(n)]
    run(repo, dvc, "add", "--quiet", *rels)
    run(repo, dvc, "push", "--quiet")
    run(repo, "git", "add", "-A")
    run(repo, "git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", f"{n} partitions")
    return repo


def plain_dvc_pin(repo: Path, rel: str) -> None:
    dvc = dvc_executable()
    run(repo, dvc, "add", "--quiet", rel)
    run(repo, dvc, "push", "--quiet", f"{rel}.dvc")
    run(repo, "git", "add", f"{rel}.dvc", str(Path(rel).parent / ".gitignore"))
    run(repo, "git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", f"pin {rel}")


def status_seconds(repo: Path) -> float:
    """`dvc status` in the repository, which must also say the workspace matches its pins."""
    started = time.perf_counter()
    done = subprocess.run([dvc_executable(), "status"], cwd=repo, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode or "up to date" not in done.stdout:
        raise RuntimeError(f"dvc status in {repo}: {done.stdout}{done.stderr}")
    return seconds


def measure(base: Path, n: int, window: int) -> dict[str, float]:
    registry, plain = platform_history(base, n, window), plain_dvc_history(base, n)
    new = "2999-12-31"
    write_partition(registry.root, new)
    write_partition(plain, new)
    out = {
        "pin": timed(lambda: registry.pin(shard_dir(new), "one new partition")),
        "plain_dvc_pin": timed(lambda: plain_dvc_pin(plain, shard_dir(new))),
        "status": status_seconds(registry.root),
        "plain_dvc_status": status_seconds(plain),
    }
    out["model_restore"] = timed(lambda: verify_model(registry, MODEL_ID))
    out["verify_command"] = verify_command(registry)
    return out


def measure_size(base: Path, mb: int) -> dict[str, float]:
    registry = Registry(base / "registry", str(base / "remote"))
    registry.ensure()
    rel = shard_dir("2026-11-01")
    (registry.root / rel).mkdir(parents=True)
    files = []
    for i in range(max(1, mb // 64)):
        files.append(registry.root / rel / f"shard-{i:05d}.parquet")
        files[-1].write_bytes(os.urandom(64 * 2**20))
    subprocess.run(["sync"], check=True)
    md5sum = timed(lambda: subprocess.run(["md5sum", *map(str, files)], stdout=subprocess.DEVNULL, check=True))
    return {
        "md5sum": md5sum,
        "pin": timed(lambda: registry.pin(rel, "big partition")),
        "repin_unchanged": timed(lambda: registry.pin(rel, "unchanged")),
    }


def main() -> None:
    parser = bench_parser()
    parser.add_argument("--partitions", default="10,300,1000,2000")
    parser.add_argument("--window", type=int, default=14)
    parser.add_argument("--mb", type=int, default=512)
    args = parser.parse_args()
    sizes = [int(n) for n in args.partitions.split(",")]
    base = Path(args.base)
    base.mkdir(parents=True, exist_ok=True)
    runs: dict[int, list[dict]] = {n: [] for n in sizes}
    by_size: list[dict] = []
    for _ in range(args.repeats):
        where = Path(tempfile.mkdtemp(dir=base))
        try:
            by_size.append(measure_size(where, args.mb))
        finally:
            shutil.rmtree(where, ignore_errors=True)
        for n in sizes:
            where = Path(tempfile.mkdtemp(dir=base))
            try:
                runs[n].append(measure(where, n, args.window))
            finally:
                shutil.rmtree(where, ignore_errors=True)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    first = med[sizes[0]]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; dvc: {dvc_executable()}; median of {args.repeats}")
    print(
        f"| partitions | pin one new | x pin at {sizes[0]} | plain DVC pin | status shards | plain DVC status | "
        f"restore {args.window}-day model (library) | `platform-assets verify <id>` |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in sizes:
        m = med[n]
        print(
            f"| {n:,} | {m['pin']:.2f} s | {m['pin'] / first['pin']:.2f}x | {m['plain_dvc_pin']:.2f} s | "
            f"{m['status']:.2f} s | {m['plain_dvc_status']:.2f} s | {m['model_restore']:.2f} s | "
            f"{m['verify_command']:.2f} s |"
        )
    size = {k: statistics.median(r[k] for r in by_size) for k in by_size[0]}
    print(
        f"\n{args.mb} MB partition: pin {size['pin']:.2f} s, md5sum {size['md5sum']:.2f} s "
        f"(**{size['pin'] / size['md5sum']:.2f}x**), re-pin unchanged {size['repin_unchanged']:.2f} s"
    )
    print(
        json.dumps(
            {
                "history": {str(n): {k: round(v, 3) for k, v in m.items()} for n, m in med.items()},
                "size": {k: round(v, 3) for k, v in size.items()},
            }
        )
    )


if __name__ == "__main__":
    main()

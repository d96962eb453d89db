"""The data registry's own guarantees with real git and DVC: parallel pins each a commit, a push
failure commits nothing, two hosts racing on one git remote, history that stays cheap."""

import multiprocessing
import os
from pathlib import Path

import pytest

from platform_assets.lib.registry import GITIGNORES, Registry, RegistryUnavailableError, dvc_executable, shard_dir
from platform_assets_tests.helpers import run_cli

pytestmark = pytest.mark.slow


def write_day(root: Path, day: str, seed: int) -> str:
    rel = shard_dir(day)
    (root / rel).mkdir(parents=True, exist_ok=True)
    (root / rel / "shard-00000.parquet").write_bytes(bytes([seed]) * 100_000 + os.urandom(1000))
    return rel


def _pin(args: tuple[str, str, str]) -> str:
    root, remote, day = args
    registry = Registry(Path(root), remote)
    return registry.pin(shard_dir(day), f"shards {day}").md5


def test_parallel_pins_each_land_as_their_own_commit(tmp_path) -> None:
    registry = Registry(tmp_path / "registry", str(tmp_path / "remote"))
    registry.ensure()
    days = [f"2026-11-0{d}" for d in range(1, 7)]
    for i, day in enumerate(days):
        write_day(registry.root, day, i)
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        hashes = pool.map(_pin, [(str(registry.root), registry.remote_url, d) for d in days])
    assert len(set(hashes)) == 6
    log = registry.git("log", "--format=%s").splitlines()
    assert sorted(log[:6]) == sorted(f"shards {d}" for d in days)  # one commit each, none lost
    for day in days:
        assert (
            registry.git(
                "show",
                "--format=",
                "--name-only",
                registry.git("log", "-1", "--format=%H", "--", f"{shard_dir(day)}.dvc"),
            )
            == f"{shard_dir(day)}.dvc"
        )  # only its own file
    assert registry.git("status", "--porcelain") == ""
    assert "in sync" in run_cli(registry.root, dvc_executable(), "status", "--cloud").stdout
    assert (registry.root / "shards" / ".gitignore").read_text() == GITIGNORES["shards"]  # no line per output


def test_a_push_failure_fails_the_pin_and_commits_nothing(tmp_path) -> None:
    (tmp_path / "remote").write_text("a file where the remote directory should be")
    registry = Registry(tmp_path / "registry", str(tmp_path / "remote"))
    registry.ensure()
    head = registry.head()
    rel = write_day(registry.root, "2026-11-01", 1)
    with pytest.raises(RegistryUnavailableError, match="pushing shards/dt=2026-11-01 to the DVC remote"):
        registry.pin(rel, "never lands")
    assert registry.head() == head and registry.git("log", "--format=%H", "--", f"{rel}.dvc") == ""
    (tmp_path / "remote").unlink()  # the remote is back: the rerun finishes the job
    assert registry.pin(rel, "lands").commit != head


def test_two_hosts_pinning_to_one_git_remote_both_land_and_tags_follow(tmp_path) -> None:
    bare = tmp_path / "registry.git"
    run_cli(tmp_path, "git", "init", "-q", "--bare", "-b", "main", str(bare))
    remote = str(tmp_path / "dvc-remote")
    host_a = Registry(tmp_path / "a", remote, git_remote=str(bare))
    host_b = Registry(tmp_path / "b", remote, git_remote=str(bare))
    host_a.ensure()
    host_b.ensure()  # cloned from the git remote: the same history
    assert host_b.head() == host_a.head()
    write_day(host_a.root, "2026-11-01", 1)
    write_day(host_b.root, "2026-11-02", 2)
    host_a.pin(shard_dir("2026-11-01"), "a pins day 1")
    model = host_b.root / "models" / "popularity" / "m1"
    model.mkdir(parents=True)
    (model / "weights.pt").write_bytes(b"w")
    host_b.pin(shard_dir("2026-11-02"), "b pins day 2")  # b is behind: rejected, fetch, rebase, push
    day2 = host_b.committed_md5(shard_dir("2026-11-02"))
    host_b.pin_model("models/popularity/m1", "popularity-model/m1", "model m1", {shard_dir("2026-11-02"): day2})
    subjects = run_cli(tmp_path, "git", "--git-dir", str(bare), "log", "--format=%s", "main").stdout.splitlines()
    assert subjects[:3] == ["model m1", "b pins day 2", "a pins day 1"]
    tagged = run_cli(tmp_path, "git", "--git-dir", str(bare), "rev-list", "-n1", "popularity-model/m1").stdout.strip()
    assert tagged == run_cli(tmp_path, "git", "--git-dir", str(bare), "rev-parse", "main").stdout.strip()
    clone = tmp_path / "clone"  # anyone can now get those bytes: clone + dvc pull
    run_cli(tmp_path, "git", "clone", "-q", str(bare), str(clone))
    run_cli(clone, dvc_executable(), "pull")
    for host, day in ((host_a, "2026-11-01"), (host_b, "2026-11-02")):
        name = f"{shard_dir(day)}/shard-00000.parquet"
        assert (clone / name).read_bytes() == (host.root / name).read_bytes()

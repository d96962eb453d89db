"""The data registry's own guarantees with real git and DVC: parallel pins each a commit, a push
failure commits nothing, two hosts racing on one git remote, tags that reach a git remote added
later, a clone behind its remote that trains, an identical retrain that commits nothing, and an
object lost everywhere that no DVC command hands out again."""

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
from pathlib import Path

import boto3
import pytest

from platform_assets.lib.model.run import train_model
from platform_assets.lib.model.train import TrainConfig
from platform_assets.lib.registry import (
    GITIGNORES,
    Registry,
    RegistryError,
    RegistryUnavailableError,
    cache_object,
    dvc_executable,
    model_tag,
    object_key,
    shard_dir,
)
from platform_assets_tests.support.helpers import run_cli, synthetic_shards
from platform_assets_tests.support.pin_worker import pin
from platform_assets_tests.support.s3_server import make_bucket, s3_server

pytestmark = pytest.mark.slow


def write_day(root: Path, day: str, seed: int) -> str:
    rel = shard_dir(day)
    (root / rel).mkdir(parents=True, exist_ok=True)
    (root / rel / "shard-00000.parquet").write_bytes(bytes([seed]) * 100_000 + os.urandom(1000))
    return rel


def test_parallel_pins_each_land_as_their_own_commit(tmp_path) -> None:
    registry = Registry(tmp_path / "registry", str(tmp_path / "remote"))
    registry.ensure()
    days = [f"2026-11-0{d}" for d in range(1, 7)]
    for i, day in enumerate(days):
        write_day(registry.root, day, i)
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        hashes = pool.map(pin, [(str(registry.root), registry.remote_url, d) for d in days])
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


def two_hosts(tmp: Path) -> tuple[Path, Registry, Registry]:
    """A bare git remote and two registries sharing it and one DVC remote (b cloned from it)."""
    bare, remote = bare_remote(tmp), str(tmp / "dvc-remote")
    host_a = Registry(tmp / "a", remote, git_remote=str(bare))
    host_b = Registry(tmp / "b", remote, git_remote=str(bare))
    host_a.ensure()
    host_b.ensure()  # cloned from the git remote: the same history
    return bare, host_a, host_b


def test_two_hosts_pinning_to_one_git_remote_both_land_and_tags_follow(tmp_path) -> None:
    bare, host_a, host_b = two_hosts(tmp_path)
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


def write_model(root: Path, model_id: str) -> str:
    rel = f"models/popularity/{model_id}"
    (root / rel).mkdir(parents=True)
    (root / rel / "weights.pt").write_bytes(model_id.encode())
    return rel


def test_two_hosts_tagging_models_at_once_each_tag_keeps_its_own_metrics(tmp_path) -> None:
    """Host b's model commit is made while host a pins and tags its own: b's push is refused,
    b rebases onto a's commit, and both rewrote the metrics file. The registry's merge rule
    keeps b's (the commit replayed) instead of stopping on the conflict, and each tag holds
    its own model's metrics, for `dvc metrics diff` between the two tags."""
    bare, host_a, host_b = two_hosts(tmp_path)
    rel_a, rel_b = write_model(host_a.root, "ma"), write_model(host_b.root, "mb")
    pin_b = host_b._pin_locked

    def a_tags_meanwhile(*args, **kwargs) -> str:  # b has caught up and committed; a lands first
        commit = pin_b(*args, **kwargs)
        host_a.pin_model(rel_a, "popularity-model/ma", "model ma", {}, {"spearman": 0.25})
        return commit

    host_b._pin_locked = a_tags_meanwhile
    host_b.pin_model(rel_b, "popularity-model/mb", "model mb", {}, {"spearman": 0.5})
    git = ("git", "--git-dir", str(bare))
    assert run_cli(tmp_path, *git, "log", "--format=%s", "main").stdout.splitlines()[:2] == ["model mb", "model ma"]
    for tag, value in (("popularity-model/ma", 0.25), ("popularity-model/mb", 0.5)):
        shown = run_cli(tmp_path, *git, "show", f"{tag}:metrics/popularity_model.json").stdout
        assert json.loads(shown) == {"spearman": value}, tag
    assert (
        run_cli(tmp_path, *git, "rev-list", "-n1", "popularity-model/mb").stdout
        == run_cli(tmp_path, *git, "rev-parse", "main").stdout
    )
    diff = run_cli(host_b.root, dvc_executable(), "metrics", "diff", "popularity-model/ma", "popularity-model/mb")
    assert "0.25" in diff.stdout and "0.5" in diff.stdout, diff.stdout


CLI = str(Path(sys.executable).with_name("platform-assets"))
DAYS = ["2026-11-01", "2026-11-02"]
TRAIN = TrainConfig(epochs=2, batch_size=64)


def pin_synthetic_days(registry: Registry, tmp: Path) -> dict[str, str]:
    """Two days of real-format shards pinned in `registry`: day -> DVC hash."""
    versions = {}
    for day, made in zip(DAYS, synthetic_shards(tmp / "made", days=len(DAYS), n=120), strict=True):
        shutil.move(made, registry.root / shard_dir(day))
        versions[day] = registry.pin(shard_dir(day), f"shards {day}").md5
    return versions


def bare_remote(tmp: Path) -> Path:
    bare = tmp / "registry.git"
    run_cli(tmp, "git", "init", "-q", "--bare", "-b", "main", str(bare))
    return bare


def remote_tags(bare: Path) -> set[str]:
    listed = run_cli(bare, "git", "--git-dir", str(bare), "tag", "--list").stdout.split()
    return set(listed)


def cli_env(registry: Registry, root: Path) -> dict:
    """`platform-assets` as a host with a workspace at `root` configured against `registry`'s remotes."""
    env = {"PLATFORM_ASSETS_WORKSPACE": str(root), "PLATFORM_ASSETS_DVC_REMOTE": registry.remote_url}
    if registry.git_remote:
        env["PLATFORM_ASSETS_REGISTRY_GIT_REMOTE"] = registry.git_remote
    if registry.s3_endpoint_url:
        env["PLATFORM_ASSETS_S3_ENDPOINT_URL"] = registry.s3_endpoint_url
    return env


def test_tags_made_before_the_git_remote_was_configured_reach_it(tmp_path) -> None:
    """A registry that trained models with no git remote, then gets one: the branch and every
    model tag land there, and a clone restores the old model by the README's recipe."""
    alone = Registry(tmp_path / "registry", str(tmp_path / "dvc-remote"))
    alone.ensure()
    versions = pin_synthetic_days(alone, tmp_path)
    first = train_model(alone, versions, TRAIN, None, {})
    second = train_model(alone, versions, TrainConfig(epochs=2, batch_size=64, seed=1), None, {})
    tags = {model_tag(first.model_id), model_tag(second.model_id)}
    assert first.new and second.new and set(alone.git("tag", "--list").split()) == tags
    bare = bare_remote(tmp_path)
    joined = Registry(alone.root, alone.remote_url, git_remote=str(bare))
    joined.ensure()  # the git remote is configured on the next use of the registry
    assert remote_tags(bare) == tags
    clone = tmp_path / "clone"
    run_cli(tmp_path, "git", "clone", "-q", str(bare), str(clone))
    run_cli(clone, "git", "checkout", model_tag(first.model_id), "--", "shards")
    run_cli(clone, dvc_executable(), "pull")
    for shard in first.manifest["shards"]:
        for f in shard["files"]:
            assert hashlib.sha256((clone / shard["path"] / f["name"]).read_bytes()).hexdigest() == f["sha256"]


def test_a_clone_behind_its_git_remote_trains_and_an_identical_retrain_commits_nothing(tmp_path) -> None:
    """Host A pins the days; host B, whose clone is behind, trains on them (it fetches first).
    A third host with an empty workspace verifies the model through the CLI; host A trains the
    same inputs again: the same id, nothing trained, nothing committed, on either side."""
    bare = bare_remote(tmp_path)
    remote = str(tmp_path / "dvc-remote")
    host_a = Registry(tmp_path / "a", remote, git_remote=str(bare))
    host_b = Registry(tmp_path / "b", remote, git_remote=str(bare))
    host_a.ensure()
    host_b.ensure()
    versions = pin_synthetic_days(host_a, tmp_path)
    behind = host_b.head()
    trained = train_model(host_b, versions, TRAIN, None, {})
    assert trained.new and host_b.git("merge-base", "--is-ancestor", behind, "HEAD", check=False) == ""
    tag = model_tag(trained.model_id)
    assert tag in remote_tags(bare)
    assert run_cli(bare, "git", "--git-dir", str(bare), "rev-list", "-n1", tag).stdout.strip() == trained.pin.commit
    done = run_cli(tmp_path, CLI, "verify", trained.model_id, env=cli_env(host_b, tmp_path / "c"))
    report = json.loads(done.stdout)
    assert report["verified"] and report["partitions"] == len(DAYS)
    run_cli(bare, "git", "--git-dir", str(bare), "tag", "-d", tag)  # as if the tag's push had failed
    assert not train_model(host_b, versions, TRAIN, None, {}).new and tag in remote_tags(bare)  # the next run pushes it
    head = run_cli(bare, "git", "--git-dir", str(bare), "rev-parse", "main").stdout
    again = train_model(host_a, versions, TRAIN, None, {})  # host A is behind B's model commit
    assert (again.model_id, again.new, again.pin.commit) == (trained.model_id, False, trained.pin.commit)
    assert again.manifest == trained.manifest
    assert run_cli(bare, "git", "--git-dir", str(bare), "rev-parse", "main").stdout == head
    assert host_a.head() == head.strip()  # host A caught up, with no commit of its own


def test_an_object_bad_in_the_cache_and_on_an_s3_remote_is_named_and_never_handed_out(tmp_path) -> None:
    """The cache's copy and the remote's copy (a real S3 API server) both corrupt: `verify <id>`
    fails naming the object, where each copy was bad and what was removed; afterwards neither
    plain `dvc checkout` nor `dvc pull` hands those bytes out, and a good copy put back heals."""
    with s3_server() as endpoint:
        make_bucket(endpoint, "dvc-store")
        registry = Registry(tmp_path / "registry", "s3://dvc-store/registry", s3_endpoint_url=endpoint)
        registry.ensure()
        trained = train_model(registry, pin_synthetic_days(registry, tmp_path), TRAIN, None, {})
        shard = trained.manifest["shards"][0]
        listing = json.loads(cache_object(registry.cache, shard["md5"]).read_bytes())
        entry = next(e for e in listing if e["relpath"].endswith(".parquet"))
        name, md5 = f"{shard['path']}/{entry['relpath']}", entry["md5"]
        (registry.root / name).unlink()  # no good copy left in the workspace either
        obj = cache_object(registry.cache, md5)
        good = obj.read_bytes()
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        key = f"registry/{object_key(md5)}"
        bad = flipped(good)
        obj.chmod(0o644)
        obj.write_bytes(bad)
        s3.put_object(Bucket="dvc-store", Key=key, Body=bad)
        env = cli_env(registry, registry.root)

        failed = run_cli(tmp_path, CLI, "verify", trained.model_id, check=False, env=env)
        assert failed.returncode == 2 and "Traceback" not in failed.stderr
        said = failed.stderr
        assert f"{name}: object {md5}" in said and "corrupt in the cache (removed)" in said
        assert "corrupt on the remote too (moved aside to s3://dvc-store/registry/quarantine/files/md5/" in said
        assert "The workspace was not touched" in said and f"training_shards for {shard['day']}" in said
        assert "index.json" not in said and "exit status" not in said and "missing from the workspace" not in said
        assert not obj.exists()  # no bad copy left in the cache ...
        aside = s3.list_objects_v2(Bucket="dvc-store", Prefix="registry/quarantine/")["Contents"]
        assert [o["Key"].split("/")[-1].split(".")[0] for o in aside] == [md5[2:]]  # ... nor where DVC looks
        assert s3.list_objects_v2(Bucket="dvc-store", Prefix=key).get("KeyCount") == 0

        run_cli(registry.root, "git", "checkout", model_tag(trained.model_id), "--", "shards")
        checkout = run_cli(registry.root, dvc_executable(), "checkout", check=False)
        status = run_cli(registry.root, dvc_executable(), "status", check=False)
        pulled = run_cli(registry.root, dvc_executable(), "pull", check=False)
        assert checkout.returncode != 0 and pulled.returncode != 0, (checkout.stderr, pulled.stderr)
        assert "up to date" not in status.stdout
        file = registry.root / name
        assert not file.exists() or hashlib.md5(file.read_bytes()).hexdigest() == md5

        again = run_cli(tmp_path, CLI, "verify", trained.model_id, check=False, env=env).stderr
        assert "absent from the cache; absent on the remote (a corrupt copy was moved aside earlier: s3://" in again
        s3.put_object(Bucket="dvc-store", Key=key, Body=good)  # a good copy is back (from a backup, another host)
        healed = run_cli(tmp_path, CLI, "verify", trained.model_id, env=env)
        assert json.loads(healed.stdout)["verified"]
        run_cli(registry.root, dvc_executable(), "pull")
        assert hashlib.md5(file.read_bytes()).hexdigest() == md5


def flipped(data: bytes) -> bytes:
    """One bit changed in the middle."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def test_catching_up_keeps_a_users_manual_checkout_and_refuses_a_conflicting_one(tmp_path) -> None:
    """Host B has a model's old `.dvc` file checked out by hand (staged, the README's recipe) and
    is behind the git remote. A pin on B fast-forwards and leaves that checkout staged; when
    the remote re-pinned that very file, the pin refuses with the fix instead of mangling it."""
    bare = bare_remote(tmp_path)
    remote = str(tmp_path / "dvc-remote")
    host_a = Registry(tmp_path / "a", remote, git_remote=str(bare))
    host_b = Registry(tmp_path / "b", remote, git_remote=str(bare))
    host_a.ensure()
    first = host_a.pin(write_day(host_a.root, "2026-11-01", 1), "day 1, version 1").commit
    host_a.pin(write_day(host_a.root, "2026-11-01", 2), "day 1, version 2")
    host_b.ensure()  # B joins at version 2 of day 1 ...
    run_cli(host_b.root, "git", "checkout", first, "--", "shards")  # ... and checks out version 1 by hand
    host_a.pin(write_day(host_a.root, "2026-11-02", 3), "day 2")
    write_day(host_b.root, "2026-11-03", 4)
    host_b.pin(shard_dir("2026-11-03"), "day 3 from B")  # B is behind: fast-forward, pin, push
    assert host_b.git("log", "--format=%s", "-3").splitlines() == ["day 3 from B", "day 2", "day 1, version 2"]
    staged = run_cli(host_b.root, "git", "diff", "--cached", "--name-only").stdout.split()
    assert staged == [f"{shard_dir('2026-11-01')}.dvc"]  # the manual checkout is still there, staged
    host_a.pin(write_day(host_a.root, "2026-11-01", 5), "day 1, version 3")  # the remote changes that file
    write_day(host_b.root, "2026-11-04", 6)
    with pytest.raises(RegistryError, match="git checkout HEAD -- shards && dvc checkout"):
        host_b.pin(shard_dir("2026-11-04"), "day 4 from B")
    assert run_cli(host_b.root, "git", "diff", "--cached", "--name-only").stdout.split() == staged
    assert "<<<<<<<" not in (host_b.root / f"{shard_dir('2026-11-01')}.dvc").read_text()
    run_cli(host_b.root, "git", "checkout", "HEAD", "--", "shards")  # the fix the message names
    assert host_b.pin(shard_dir("2026-11-04"), "day 4 from B").commit == host_b.head()

"""Crash safety of the shards: SIGKILL a real process (and every command it started) in the
middle of `training_shards` and of each step of its pin into the data registry (`events`:
test_crash_events.py). Afterwards no partial output is visible (every visible file is
complete: byte for byte the file an uninterrupted run writes), DVC still works in the
registry and tells the truth, and a rerun produces byte-identical shards, the same `.dvc`
file committed at HEAD and a clean registry."""

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from platform_assets.defs.embeddings.assets import image_embeddings, image_encoder, title_embeddings
from platform_assets.defs.features.assets import photo_features, popularity_labels, training_set, user_activity
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.partitions import range_tags
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.registry import dvc_executable, read_dvc_file, shard_dir
from platform_assets_tests.reliability.killable_child import DAY, Child
from platform_assets_tests.reliability.materialize_child import command
from platform_assets_tests.support.helpers import Lake, files_under, make_lake, registry_resource, run_cli

pytestmark = pytest.mark.slow

DVC_FILE = f"{shard_dir(DAY)}.dvc"
RANGE = range_tags(DAY, "2026-11-02")
FAST = {
    "ops": {
        "embeddings__image_encoder": {"config": {"epochs": 1, "batch_size": 64}},
        "embeddings__image_embeddings": {"config": {"workers": 0}},
    }
}


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> tuple[Lake, Path]:
    root = tmp_path_factory.mktemp("crash-shards")
    lake = make_lake(root)
    resources = {**lake.resources(), "workspace": registry_resource(root / "unused")}
    assert dg.materialize(
        [raw_users, raw_photos, stage_users, stage_photos, photo_features], resources=resources
    ).success
    for day in ("2026-11-01", "2026-11-02"):
        assert dg.materialize([stage_events], partition_key=day, resources=resources).success
    assert dg.materialize([user_activity, popularity_labels, training_set], resources=resources, tags=RANGE).success
    assert dg.materialize(
        [image_encoder, image_embeddings, title_embeddings], resources=resources, run_config=FAST, tags=RANGE
    ).success
    return lake, root


def dvc(registry: Path, *args: str) -> str:
    return run_cli(registry, dvc_executable(), *args).stdout


def git(registry: Path, *args: str) -> str:
    return run_cli(registry, "git", *args).stdout


@dataclass(frozen=True)
class Reference:
    """One uninterrupted run's shards folder (sha256 per visible file) and its `.dvc` file."""

    files: dict[str, str]
    dvc_file: str

    @property
    def md5(self) -> str:
        return yaml.safe_load(self.dvc_file)["outs"][0]["md5"]


def day_files(registry: Path) -> dict[str, str]:
    """sha256 of every visible file of the day's shards and its `.dvc` file, by path in `shards/`."""
    shards = registry / "shards"
    return {k: v for k, v in files_under(shards).items() if k.startswith(f"dt={DAY}/") or k == f"dt={DAY}.dvc"}


def assert_registry_consistent(registry: Path, reference: Reference, what: str) -> None:
    """After a finished run: the shards are the reference's byte for byte, DVC says the
    workspace and the remote hold them, the pin is committed at HEAD and nothing is left over."""
    assert day_files(registry) == reference.files, f"{what}: the shards differ from the uninterrupted run"
    assert "up to date" in dvc(registry, "status"), what
    assert json.loads(dvc(registry, "status", "--cloud", "--json") or "{}") == {}, f"{what}: the remote lacks objects"
    assert git(registry, "show", f"HEAD:{DVC_FILE}") == reference.dvc_file, f"{what}: HEAD holds another pin"
    assert git(registry, "log", "--oneline", "--", DVC_FILE).strip(), what
    assert git(registry, "status", "--porcelain") == "", f"{what}: the registry is not clean"


@pytest.fixture(scope="module")
def shard_reference(graph) -> Reference:
    """The day's shards and `.dvc` file from one uninterrupted run in a registry of their own."""
    lake, root = graph
    registry = root / "ref" / "registry"
    Child("shards", lake, registry, root / "tmp").finish()
    files = files_under(registry / "shards")
    assert f"dt={DAY}/index.json" in files and f"dt={DAY}.dvc" in files
    reference = Reference(files, (registry / DVC_FILE).read_text())
    assert_registry_consistent(registry, reference, "reference")
    return reference


# Where the kill lands: while a shard is being written, then at each step of the pin.
KILL_POINTS: dict[str, Callable[[Path, Path], bool]] = {
    # a shard's temporary file exists in the day's build folder: the writer is mid-file
    "shard": lambda reg, remote: any(p.name.startswith(".tmp-") for p in (reg / ".dvc/tmp/build").glob("*/*")),
    # the build is swapped into place: the pin has started (the registry is created first)
    "pin": lambda reg, remote: (reg / "shards" / f"dt={DAY}" / "index.json").exists(),
    # `git init` running or just done (`dvc init` next)
    "registry-init": lambda reg, remote: (reg / ".git" / "HEAD").exists(),
    # `dvc init` done: the remote is being configured and the registry's first commit made
    "dvc-init": lambda reg, remote: (reg / ".dvc" / "config").exists(),
    # the `.dvc` stub is written: `dvc commit` hashes the shards into the cache
    "dvc-commit": lambda reg, remote: (reg / DVC_FILE).exists(),
    # the first object is on the remote: `dvc push` is running
    "dvc-push": lambda reg, remote: remote.is_dir() and any(remote.iterdir()),
}


@pytest.mark.parametrize("stage", list(KILL_POINTS))
def test_killed_shard_write_and_pin_leave_the_registry_working_and_rerun_byte_identical(
    graph, shard_reference, stage
) -> None:
    lake, root = graph
    reference = shard_reference
    registry, remote = root / f"crash-{stage}" / "registry", root / f"crash-{stage}" / "dvc-remote"
    for _ in range(3):  # a fast step can finish between two polls: then start again from nothing
        shutil.rmtree(registry.parent, ignore_errors=True)
        if Child("shards", lake, registry, root / "tmp").kill_when(lambda: KILL_POINTS[stage](registry, remote)):
            break
    else:
        pytest.fail(f"{stage}: finished before the kill, three times")
    visible = files_under(registry / "shards") if (registry / "shards").exists() else {}
    data = {k: v for k, v in visible.items() if not k.endswith(".dvc")}
    assert all(reference.files[k] == v for k, v in data.items()), f"{stage}: a partial file is visible"
    if f"dt={DAY}.dvc" in visible:  # the pin's stub (no hash yet: "not pinned") or its finished .dvc file, never torn
        out = read_dvc_file(registry / DVC_FILE)
        assert out["path"] == f"dt={DAY}" and out.get("md5") in (None, reference.md5), f"{stage}: {out}"
    if (registry / ".dvc" / "config").exists() and (registry / ".dvcignore").exists():  # `dvc init` finished
        status = dvc(registry, "status")  # no stale lock: DVC still runs
        if f"dt={DAY}.dvc" in visible:  # the pin got as far as its .dvc file: DVC tells the truth about it
            assert "up to date" in status or "modified" in status, f"{stage}: {status}"
    head = run_cli(registry, "git", "show", f"HEAD:{DVC_FILE}", check=False) if (registry / ".git").exists() else None
    if head is not None and head.returncode == 0:  # a pin committed before the kill is the whole pin
        assert head.stdout == reference.dvc_file, stage
    Child("shards", lake, registry, root / "tmp").finish()
    assert_registry_consistent(registry, reference, stage)


def test_overlapping_shard_backfills_pin_without_lock_failures(graph, shard_reference) -> None:
    """Two backfills of the same days at once, each day its own process: four shard runs and
    four pins (DVC commands and git commits) in one registry at the same time."""
    lake, root = graph
    registry = root / "overlap" / "registry"
    days = ["2026-11-01", "2026-11-02"]
    logs = [tempfile.TemporaryFile("w+") for _ in range(2 * len(days))]  # files: four full pipes would stall them
    runs = [
        subprocess.Popen(
            command("shards", day, lake.store.root, lake.app_db_url, str(registry)),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        for log, day in zip(logs, days * 2)
    ]
    for proc, log in zip(runs, logs):
        if proc.wait(timeout=600):
            log.seek(0)
            raise AssertionError(log.read()[-3000:])
    got = files_under(registry / "shards")
    assert day_files(registry) == shard_reference.files
    assert f"dt={days[1]}.dvc" in got and f"dt={days[1]}/index.json" in got
    assert_registry_consistent(registry, shard_reference, "overlap")
    assert git(registry, "log", "--oneline", "--", f"{shard_dir(days[1])}.dvc").strip()


def test_a_dvc_remote_on_s3_dropping_connections_still_gets_every_pin(graph, shard_reference) -> None:
    """The S3 DVC remote resets connections and answers 503 for a while during the push: the
    pin retries (DVC's S3 client, then Dagster's retry policy) and the remote ends complete."""
    from urllib.parse import urlparse

    from platform_assets_tests.support.fault_proxy import fault_proxy
    from platform_assets_tests.support.s3_server import make_bucket, s3_server

    lake, root = graph
    registry = root / "remote" / "registry"
    with s3_server() as endpoint, fault_proxy(urlparse(endpoint).port, http=True) as proxy:
        make_bucket(endpoint, "dvc-store")
        proxy.fail_next(6)
        Child(
            "shards", lake, registry, root / "tmp", "s3://dvc-store/platform", f"http://127.0.0.1:{proxy.port}"
        ).finish()
        assert proxy.injected == 6 and proxy.forwarded > 0
        assert not (root / "remote" / "dvc-remote").exists()  # nothing went to the default directory remote
        assert_registry_consistent(registry, shard_reference, "s3 remote")  # `dvc status --cloud`: all on S3
        assert "in sync" in dvc(registry, "status", "--cloud", "--remote", "storage")

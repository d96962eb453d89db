"""Crash safety: SIGKILL a real process in the middle of `events`, of `training_shards` and of
its DVC pin. Afterwards no partial output is visible (every visible file is complete: byte
for byte the file an uninterrupted run writes), `dvc status` works and tells the truth, and a
rerun produces byte-identical outputs to the uninterrupted run."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.defs.embeddings.assets import image_embeddings, image_encoder, title_embeddings
from platform_assets.defs.features.assets import photo_features, popularity_labels, training_set, user_activity
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.resources import WorkspaceResource
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.simulator import LakeScale
from platform_assets_tests.conftest import Lake, dvc_repo, files_under, make_lake
from platform_assets_tests.reliability.materialize_child import command

DAY = "2026-11-01"
BIG_DAY = LakeScale(users=400, photos=300, days=1, events_per_day=400_000, files_per_hour=2, defect_rate=0.005, seed=5)
RANGE = {"dagster/asset_partition_range_start": DAY, "dagster/asset_partition_range_end": "2026-11-02"}
FAST = {"ops": {"embeddings__image_encoder": {"config": {"epochs": 1, "batch_size": 64}},
                "embeddings__image_embeddings": {"config": {"workers": 0}}}}


class Child:
    """One partition materialized in its own process (see materialize_child.py)."""

    def __init__(self, asset: str, lake: Lake, workspace: Path, tmp: Path, *remote: str) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            command(asset, DAY, lake.store.root, lake.app_db_url, str(workspace), *remote),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "TMPDIR": str(tmp)},
        )
        assert self.proc.stdout.readline().strip() == "ready"
        self.started = time.monotonic()

    def finish(self) -> float:
        assert self.proc.wait(timeout=300) == 0
        return time.monotonic() - self.started

    def kill_when(self, marker: Callable[[], bool]) -> bool:
        """SIGKILL as soon as `marker()` holds; False when the run finished first."""
        deadline = time.monotonic() + 120
        while not marker():
            if self.proc.poll() is not None:
                return False
            assert time.monotonic() < deadline
            time.sleep(0.0005)
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return True


@pytest.fixture(scope="module")
def big_day(tmp_path_factory) -> tuple[Lake, Path]:
    root = tmp_path_factory.mktemp("crash-events")
    return make_lake(root, BIG_DAY), root


def test_killed_events_run_leaves_no_partial_partition_and_reruns_byte_identical(big_day) -> None:
    lake, root = big_day
    staging = Path(lake.store.root) / "staging"
    Child("events", lake, root / "ws", root / "tmp").finish()  # uninterrupted
    reference = files_under(staging)
    assert {k.split("/")[0] for k in reference} == {"events", "events_quarantine"}

    tmp = root / "tmp"
    writing = lambda: any(tmp.glob("events-*/events.parquet"))  # noqa: E731 - the sorted events half written
    seconds = Child("events", lake, root / "ws", tmp).finish()
    killed = 0
    for i, when in enumerate([writing, 0.2, 0.5, 0.8]):  # the marker, then fractions of an uninterrupted run
        shutil.rmtree(staging)
        child = Child("events", lake, root / "ws", tmp)
        marker = when if callable(when) else (lambda t=child.started + when * seconds: time.monotonic() > t)
        killed += child.kill_when(marker)
        visible = files_under(staging) if staging.exists() else {}
        assert all(reference[k] == v for k, v in visible.items()), f"kill {i}: a partial file is visible"
        Child("events", lake, root / "ws", tmp).finish()
        assert files_under(staging) == reference, f"kill {i}: the rerun differs from the uninterrupted run"
    assert killed >= 3  # the kills landed in the work, not after it


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> tuple[Lake, Path]:
    root = tmp_path_factory.mktemp("crash-shards")
    lake = make_lake(root)
    resources = {**lake.resources(), "workspace": WorkspaceResource(root=str(root / "unused"))}
    assert dg.materialize([raw_users, raw_photos, stage_users, stage_photos, photo_features], resources=resources).success
    for day in ("2026-11-01", "2026-11-02"):
        assert dg.materialize([stage_events], partition_key=day, resources=resources).success
    assert dg.materialize([user_activity, popularity_labels, training_set], resources=resources, tags=RANGE).success
    assert dg.materialize([image_encoder, image_embeddings, title_embeddings], resources=resources, run_config=FAST).success
    return lake, root


def dvc_status(repo: Path) -> str:
    return subprocess.run([str(Path(sys.executable).with_name("dvc")), "status"], cwd=repo, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def shard_reference(graph) -> dict[str, str]:
    """The day's shards and `.dvc` file from one uninterrupted run in a repository of their own."""
    lake, root = graph
    ref_repo = dvc_repo(root / "ref")
    Child("shards", lake, ref_repo / "data", root / "tmp").finish()
    reference = files_under(ref_repo / "data")
    assert f"shards/dt={DAY}/index.json" in reference and f"shards/dt={DAY}.dvc" in reference
    assert "up to date" in dvc_status(ref_repo)
    return reference


def test_killed_shard_write_and_dvc_pin_leave_dvc_consistent_and_rerun_byte_identical(graph, shard_reference) -> None:
    lake, root = graph
    reference = shard_reference

    for i, stage in enumerate(["shard", "pin"]):
        repo = dvc_repo(root / f"crash-{stage}")
        shards = repo / "data" / "shards" / f"dt={DAY}"
        marker = {
            "shard": lambda: shards.exists() and any(p.name.startswith(".tmp-") for p in shards.iterdir()),
            "pin": lambda: (shards / "index.json").exists(),  # the shards are written: the DVC pin runs next
        }[stage]
        assert Child("shards", lake, repo / "data", root / "tmp").kill_when(marker), f"{stage}: finished before the kill"
        visible = files_under(repo / "data")
        assert all(reference[k] == v for k, v in visible.items()), f"{stage}: a partial file is visible"
        if f"shards/dt={DAY}.dvc" in visible:  # the pin got as far as writing its .dvc file
            assert "up to date" in dvc_status(repo) or "modified" in dvc_status(repo)
        else:
            dvc_status(repo)  # no stale lock: DVC still runs
        Child("shards", lake, repo / "data", root / "tmp").finish()
        assert files_under(repo / "data") == reference, f"{stage}: the rerun differs from the uninterrupted run"
        assert "up to date" in dvc_status(repo), i


def test_overlapping_shard_backfills_pin_without_dvc_lock_failures(graph, shard_reference) -> None:
    """Two backfills of the same days at once, each day its own process: four shard runs and
    four DVC pins in one repository at the same time."""
    lake, root = graph
    repo = dvc_repo(root / "overlap")
    days = ["2026-11-01", "2026-11-02"]
    runs = [subprocess.Popen(command("shards", day, lake.store.root, lake.app_db_url, str(repo / "data")),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _backfill in range(2) for day in days]
    for proc in runs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    got = files_under(repo / "data")
    assert {k: v for k, v in got.items() if k.startswith(f"shards/dt={DAY}")} == shard_reference
    assert f"shards/dt={days[1]}.dvc" in got and f"shards/dt={days[1]}/index.json" in got
    assert "up to date" in dvc_status(repo)


def test_a_dvc_remote_on_s3_dropping_connections_still_gets_every_pin(graph, shard_reference) -> None:
    """The S3 DVC remote resets connections and answers 503 for a while during the push: the
    pin retries (DVC's S3 client, then Dagster's retry policy) and the remote ends complete."""
    from urllib.parse import urlparse

    from platform_assets_tests.fault_proxy import fault_proxy
    from platform_assets_tests.s3_server import make_bucket, s3_server

    lake, root = graph
    repo = dvc_repo(root / "remote")
    dvc = str(Path(sys.executable).with_name("dvc"))
    with s3_server() as endpoint, fault_proxy(urlparse(endpoint).port, http=True) as proxy:
        make_bucket(endpoint, "dvc-store")
        subprocess.run([dvc, "remote", "add", "store", "s3://dvc-store/platform"], cwd=repo, check=True)
        subprocess.run([dvc, "remote", "modify", "store", "endpointurl", f"http://127.0.0.1:{proxy.port}"], cwd=repo,
                       check=True)
        proxy.fail_next(6)
        Child("shards", lake, repo / "data", root / "tmp", "store").finish()
        assert proxy.injected == 6 and proxy.forwarded > 0
        assert files_under(repo / "data") == shard_reference
        cloud = subprocess.run([dvc, "status", "--cloud", "--remote", "store"], cwd=repo, check=True,
                               capture_output=True, text=True).stdout
        assert "in sync" in cloud  # every file of the pin is on the remote

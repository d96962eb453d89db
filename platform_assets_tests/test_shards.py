"""Training shards end to end on a small lake: deterministic bytes, atomic writes, the reader."""

import hashlib
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from platform_assets.defs.embeddings.assets import image_embeddings, image_encoder, title_embeddings
from platform_assets.defs.features.assets import photo_features, popularity_labels, training_set, user_activity
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.partitions import range_tags
from platform_assets.defs.shards.assets import training_shards
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.registry import dvc_executable, shard_dir
from platform_assets.lib.shards.reader import ShardDataset, ShardLoader, local_shards, shard_paths
from platform_assets.lib.shards.writer import write_shards
from platform_assets_tests.support.helpers import make_lake, registry_resource, run_cli

pytestmark = pytest.mark.slow

DAY = "2026-11-01"
RANGE = range_tags("2026-11-01", "2026-11-02")
FAST = {
    "ops": {
        "embeddings__image_encoder": {"config": {"epochs": 1, "batch_size": 64}},
        "embeddings__image_embeddings": {"config": {"workers": 0}},
    }
}


@pytest.fixture(scope="module")
def shard_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    lake = make_lake(root)
    resources = {**lake.resources(), "workspace": registry_resource(root / "ws1")}
    assert dg.materialize(
        [raw_users, raw_photos, stage_users, stage_photos, photo_features], resources=resources
    ).success
    for day in ("2026-11-01", "2026-11-02"):
        assert dg.materialize([stage_events], partition_key=day, resources=resources).success
    assert dg.materialize([user_activity, popularity_labels, training_set], resources=resources, tags=RANGE).success
    lake.store.write_bytes("images/2.jpg", b"broken")  # a broken JPEG must not fail the partition
    assert dg.materialize(
        [image_encoder, image_embeddings, title_embeddings], resources=resources, run_config=FAST, tags=RANGE
    ).success
    return lake, root, resources


def build(resources, where: Path, **config) -> dg.ExecuteInProcessResult:
    """Build the day into a registry of its own at `where/registry` (remote `where/dvc-remote`)."""
    res = {**resources, "workspace": registry_resource(where)}
    return dg.materialize(
        [training_shards],
        partition_key=DAY,
        resources=res,
        run_config={"ops": {"shards__training_shards": {"config": {"target_shard_mb": 1, **config}}}},
    )


def assert_pinned_as_a_commit(registry: Path, day: str, commit: str) -> None:
    """The pin is a commit of the registry holding the day's `.dvc` file, nothing is left
    uncommitted, and every object of it is on the DVC remote."""
    assert run_cli(registry, "git", "log", "--oneline", "--", f"{shard_dir(day)}.dvc").stdout.strip()
    assert run_cli(registry, "git", "status", "--porcelain").stdout == ""
    assert run_cli(registry, "git", "rev-parse", "HEAD").stdout.strip() == commit
    committed = run_cli(registry, "git", "show", f"HEAD:{shard_dir(day)}.dvc").stdout
    assert committed == (registry / f"{shard_dir(day)}.dvc").read_text()
    status = run_cli(registry, dvc_executable(), "status", "--json")
    assert json.loads(status.stdout) == {}  # the workspace holds what the .dvc file records
    cloud = run_cli(registry, dvc_executable(), "status", "--cloud", "--json")
    assert json.loads(cloud.stdout or "{}") == {}  # and the remote holds every object of it


def test_shards_are_byte_identical_across_builds_and_indexed(shard_lake) -> None:
    lake, root, resources = shard_lake
    first, second = build(resources, root / "a", workers=0), build(resources, root / "b", workers=2)
    assert first.success and second.success
    shards_a, shards_b = root / "a" / "registry" / shard_dir(DAY), root / "b" / "registry" / shard_dir(DAY)
    index_a = json.loads((shards_a / "index.json").read_text())
    index_b = json.loads((shards_b / "index.json").read_text())
    assert index_a == index_b and len(index_a["shards"]) >= 2  # 1 MB target: several shards
    for shard in index_a["shards"]:
        data = (shards_a / shard["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"] and len(data) == shard["bytes"]
    meta = [m.materialization.metadata for m in first.get_asset_materialization_events()][0]
    assert meta["rows_without_embeddings"].value == 1  # photo 2: its image is broken, so quarantined
    table = pa.concat_tables(pq.read_table(p) for p in shard_paths([shards_a]))
    assert table.num_rows == sum(s["samples"] for s in index_a["shards"]) == meta["samples"].value
    assert 2 not in table["photo_id"].to_pylist()  # the broken image's photo is left out, the rest ship
    views = table.group_by("photo_id").aggregate([("view", "count")])
    assert set(views["view_count"].to_pylist()) == {2}
    # pinned by DVC: the .dvc hash is the data version, equal across identical builds, status clean
    mats = [r.get_asset_materialization_events()[0].materialization for r in (first, second)]
    dvc_a = yaml.safe_load((root / "a" / "registry" / f"{shard_dir(DAY)}.dvc").read_text())["outs"][0]["md5"]
    dvc_b = yaml.safe_load((root / "b" / "registry" / f"{shard_dir(DAY)}.dvc").read_text())["outs"][0]["md5"]
    assert mats[0].tags["dagster/data_version"] == mats[1].tags["dagster/data_version"] == dvc_a == dvc_b
    assert meta["dvc_hash"].value == dvc_a and meta["dvc_file"].value == f"{shard_dir(DAY)}.dvc"
    # each pin is a commit of its registry, made after the push: the remote has the objects
    for where, mat in zip(("a", "b"), mats):
        assert_pinned_as_a_commit(root / where / "registry", DAY, mat.metadata["registry_commit"].value)
    other_seed = build(resources, root / "c", seed=1)
    index_c = json.loads((root / "c" / "registry" / f"{shard_dir(DAY)}/index.json").read_text())
    assert other_seed.success and index_c["shards"][0]["sha256"] != index_a["shards"][0]["sha256"]
    meta_c = other_seed.get_asset_materialization_events()[0].materialization.metadata
    assert meta_c["dvc_hash"].value != dvc_a  # other bytes, another data version
    assert_pinned_as_a_commit(root / "c" / "registry", DAY, meta_c["registry_commit"].value)


class _SlowDisk:
    """The local filesystem, but every write trickles out in small slow pieces, so a kill
    reliably lands in the middle of writing a shard."""

    def __init__(self, fs) -> None:
        self.fs = fs

    def __getattr__(self, name):
        return getattr(self.fs, name)

    def open_output_stream(self, path, compression=None):
        stream = self.fs.open_output_stream(path, compression=compression)

        class Slow:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                stream.close()

            def write(self, data):
                view = memoryview(data)
                for i in range(0, len(view), 2**16):
                    stream.write(view[i : i + 2**16])
                    time.sleep(0.01)

        return Slow()


def _write_slowly(root: str) -> None:
    store = LakeStore(root)
    fs, base = store._fs_and_base()
    object.__setattr__(store, "_fs_and_base", lambda: (_SlowDisk(fs), base))
    table = pa.table({"blob": [os.urandom(2**20) for _ in range(8)]})
    write_shards(store, shard_dir("2026-11-01"), table, target_bytes=4 * 2**20, threads=1)


def test_a_killed_write_leaves_no_shard_that_looks_complete(tmp_path) -> None:
    proc = multiprocessing.get_context("spawn").Process(target=_write_slowly, args=(str(tmp_path),))
    proc.start()
    target = tmp_path / shard_dir("2026-11-01")
    deadline = time.monotonic() + 60
    while not (target.exists() and any(p.name.startswith(".tmp-") for p in target.iterdir())):
        assert time.monotonic() < deadline and proc.is_alive(), "the writer never started a shard"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert [p.name for p in target.iterdir() if not p.name.startswith(".")] == []  # no shard, no index
    assert LakeStore(str(tmp_path)).list_files("shards") == []  # what readers and DVC see: nothing


def test_reader_yields_the_pipelines_shards_as_tensors(shard_lake) -> None:
    """The reader over shards the graph wrote (its order and resume: test_reader.py)."""
    lake, root, resources = shard_lake
    assert build(resources, root / "r").success
    shards = local_shards([root / "r" / "registry" / shard_dir(DAY)])
    stored = pa.concat_tables(pq.read_table(s.path) for s in shards)
    seen = []
    for batch in ShardLoader(ShardDataset(shards, seed=3), batch_size=16, num_workers=2):
        assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (3, 64, 64)
        assert batch["features"].shape[1] == batch["feature_mask"].shape[1] == 10
        seen += list(zip(batch["photo_id"].tolist(), batch["view"].tolist(), strict=True))
    assert sorted(seen) == sorted(zip(stored["photo_id"].to_pylist(), stored["view"].to_pylist(), strict=True))

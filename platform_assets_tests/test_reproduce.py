"""End to end: data version 1 -> model A; new and late logs -> version 2 -> model B; then
`reproduce A` and plain `git checkout` + `dvc checkout` restore version 1 byte for byte."""

import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from platform_assets.defs.embeddings.assets import image_embeddings, image_encoder, title_embeddings
from platform_assets.defs.features.assets import photo_features, popularity_labels, training_set, user_activity
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.models.assets import popularity_model
from platform_assets.defs.resources import WorkspaceResource
from platform_assets.defs.shards.assets import training_shards
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.dvc_pin import pin
from platform_assets.lib.model.run import MODELS, ReproductionError, reproduce
from platform_assets.lib.simulator import LakeScale, append_hour
from platform_assets.lib.simulator.generate import TRUTH_KEY
from platform_assets_tests.conftest import dvc_repo, make_lake

SCALE = LakeScale(users=120, photos=500, days=3, events_per_day=6000, defect_rate=0.005, seed=21)
DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
FAST = {"ops": {"embeddings__image_encoder": {"config": {"epochs": 1, "batch_size": 64}},
                "embeddings__image_embeddings": {"config": {"workers": 0}}}}
MODEL = {"ops": {"models__popularity_model": {"config": {"epochs": 3}}}}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


def dvc(repo: Path, *args: str) -> str:
    return subprocess.run([str(Path(sys.executable).with_name("dvc")), *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout


def shard_bytes(workspace: Path) -> dict[str, str]:
    return {str(p.relative_to(workspace)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((workspace / "shards").rglob("*.parquet"))}


def build_all(lake, resources) -> None:
    for day in DAYS:
        assert dg.materialize([stage_events], partition_key=day, resources=resources).success
    assert dg.materialize([user_activity, popularity_labels, training_set], resources=resources,
                          tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}).success
    for day in DAYS:
        assert dg.materialize([training_shards], partition_key=day, resources=resources,
                              run_config={"ops": {"shards__training_shards": {"config": {"target_shard_mb": 1}}}}).success


def test_models_map_to_exact_data_versions_and_reproduce(tmp_path) -> None:
    lake = make_lake(tmp_path / "lake", SCALE)
    repo = dvc_repo(tmp_path / "repo")
    workspace = repo / "data"
    resources = {**lake.resources(), "workspace": WorkspaceResource(root=str(workspace))}
    assert dg.materialize([raw_users, raw_photos, stage_users, stage_photos, photo_features], resources=resources).success
    assert dg.materialize([image_encoder, image_embeddings, title_embeddings], resources=resources, run_config=FAST).success
    build_all(lake, resources)
    v1 = shard_bytes(workspace)
    model_a = dg.materialize([popularity_model], resources=resources, run_config=MODEL)
    assert model_a.success
    meta_a = model_a.get_asset_materialization_events()[0].materialization.metadata
    a = meta_a["model_id"].value
    manifest_a = json.loads((workspace / MODELS / a / "manifest.json").read_text())
    assert manifest_a["metrics"]["holdout_photos"] > 20
    assert set(manifest_a["metrics"]) >= {"spearman_model", "spearman_features_only", "spearman_planted_ground_truth"}
    assert {s["day"]: s["md5"] for s in manifest_a["shards"]} == meta_a["shard_dvc_hashes"].value
    assert {d: v["dvc_hash"] for d, v in meta_a["shard_materializations"].value.items()} == meta_a["shard_dvc_hashes"].value
    assert json.loads(dvc(repo, "status", "--json")) == {}
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data version 1, model A")
    commit_a = git(repo, "rev-parse", "HEAD")

    append_hour(lake.store, late_day=DAYS[0])  # new and late logs change the features, so the shards
    build_all(lake, resources)
    v2 = shard_bytes(workspace)
    assert v2 != v1
    model_b = dg.materialize([popularity_model], resources=resources, run_config=MODEL)
    b = model_b.get_asset_materialization_events()[0].materialization.metadata["model_id"].value
    assert b != a
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data version 2, model B")

    truth = lake.store.read_parquet(TRUTH_KEY)
    report = reproduce(workspace, a, truth)
    assert report["metrics"] == manifest_a["metrics"]
    assert shard_bytes(workspace) == v1  # byte for byte

    git(repo, "checkout", "-q", "HEAD", "--", "data")  # reproduce left A's .dvc files: back to B's ...
    dvc(repo, "checkout", "--force")  # ... and version 2's bytes
    assert shard_bytes(workspace) == v2
    git(repo, "checkout", "-q", commit_a, "--", "data")  # the plain DVC workflow: the .dvc files of A ...
    dvc(repo, "checkout", "--force")  # ... and `dvc checkout`
    assert shard_bytes(workspace) == v1


def test_a_corrupted_cache_file_is_detected_not_used(tmp_path) -> None:
    repo = dvc_repo(tmp_path / "repo")
    shards = repo / "data" / "shards" / "dt=2026-11-01"
    shards.mkdir(parents=True)
    (shards / "shard-00000.parquet").write_bytes(b"version one" * 1000)
    (shards / "index.json").write_text(json.dumps({"shards": [{"name": "shard-00000.parquet", "samples": 1}]}))
    pinned = pin(shards)
    manifest = {"shards": [{
        "day": "2026-11-01", "path": pinned.path, "md5": pinned.md5,
        "dvc_file": (repo / pinned.dvc_file).read_text(),
        "files": [{"name": "shard-00000.parquet", "sha256": hashlib.sha256(b"version one" * 1000).hexdigest()}],
    }]}
    for cached in (repo / ".dvc" / "cache").rglob("*"):
        if cached.is_file() and cached.read_bytes() == b"version one" * 1000:
            cached.chmod(0o644)
            cached.write_bytes(b"version 0ne" * 1000)  # bit rot in the cache
    (shards / "shard-00000.parquet").write_bytes(b"something else")
    from platform_assets.lib.model.run import restore_shards

    with pytest.raises(ReproductionError, match="shard-00000.parquet"):
        restore_shards(repo / "data", manifest)


def _pin_one(directory: str) -> str:
    return pin(Path(directory)).md5


def test_parallel_pins_neither_fail_nor_corrupt(tmp_path) -> None:
    repo = dvc_repo(tmp_path / "repo")
    dirs = []
    for d in range(6):
        path = repo / "data" / "shards" / f"dt=2026-11-0{d + 1}"
        path.mkdir(parents=True)
        (path / "shard-00000.parquet").write_bytes(bytes([d]) * 100_000)
        dirs.append(str(path))
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        hashes = pool.map(_pin_one, dirs)
    assert len(set(hashes)) == 6
    for path, md5 in zip(dirs, hashes):
        assert yaml.safe_load(Path(f"{path}.dvc").read_text())["outs"][0]["md5"] == md5
    assert json.loads(dvc(repo, "status", "--json")) == {}


def test_pins_are_pushed_and_restored_from_the_remote_alone(tmp_path) -> None:
    from platform_assets.lib.model.run import restore_shards

    repo = dvc_repo(tmp_path / "repo")
    dvc(repo, "remote", "add", "store", str(tmp_path / "remote"))
    shards = repo / "data" / "shards" / "dt=2026-11-01"
    shards.mkdir(parents=True)
    data = os.urandom(300_000)
    (shards / "shard-00000.parquet").write_bytes(data)
    pinned = pin(shards, remote="store")
    assert any(p.is_file() for p in (tmp_path / "remote").rglob("*"))
    manifest = {"shards": [{"day": "2026-11-01", "path": pinned.path, "md5": pinned.md5,
                            "dvc_file": (repo / pinned.dvc_file).read_text(),
                            "files": [{"name": "shard-00000.parquet", "sha256": hashlib.sha256(data).hexdigest()}]}]}
    shutil.rmtree(repo / ".dvc" / "cache")  # a fresh machine: no cache, no workspace copy
    shutil.rmtree(shards)
    restore_shards(repo / "data", manifest, remote="store")
    assert (shards / "shard-00000.parquet").read_bytes() == data

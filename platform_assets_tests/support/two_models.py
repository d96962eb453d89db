"""Two data versions with a model on each, over real pins (real git, real DVC, a directory
remote): the scenario test_reproduce and test_data_diff share. Built once per test process
(conftest's session fixture; both modules are one xdist group), since it trains two models.

Model A trains on days 1-2. A late log file then changes day 1 and day 3's shards are added;
day 2 is not rebuilt, so its pin stays. Model B trains on days 1-3. Day 4 only closes day 3's
label windows: it is never pinned."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from platform_assets.defs.embeddings.assets import image_embeddings, image_encoder, title_embeddings
from platform_assets.defs.features.assets import photo_features, popularity_labels, training_set, user_activity
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.models.assets import popularity_model
from platform_assets.defs.partitions import range_tags
from platform_assets.defs.shards.assets import training_shards
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.lake_layout import GROUND_TRUTH_FILE
from platform_assets.lib.simulator import LakeScale, append_hour
from platform_assets_tests.support.helpers import make_lake, registry_resource, scale_days

SCALE = LakeScale(users=120, photos=320, days=4, events_per_day=4000, defect_rate=0.005, seed=21)
DAYS = scale_days(SCALE)
PINNED = DAYS[:3]  # the days with shards in either version
FAST = {
    "ops": {
        "embeddings__image_encoder": {"config": {"epochs": 1, "batch_size": 64}},
        "embeddings__image_embeddings": {"config": {"workers": 0}},
    }
}
SHARDS = {"ops": {"shards__training_shards": {"config": {"target_shard_mb": 1}}}}
MODEL = {"ops": {"models__popularity_model": {"config": {"epochs": 2}}}}
CLI = str(Path(sys.executable).with_name("platform-assets"))


def cli_env(models: dict) -> dict[str, str]:
    """The settings `platform-assets` reads for the scenario: the registry, its remote, the lake."""
    registry = models["registry"]
    return {
        "PLATFORM_ASSETS_WORKSPACE": str(registry.root),
        "PLATFORM_ASSETS_DVC_REMOTE": registry.remote_url,
        "PLATFORM_ASSETS_LAKE": models["lake"].store.root,
    }


def shard_bytes(root: Path) -> dict[str, str]:
    """sha256 of every shard file under a registry checkout."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "shards").rglob("*.parquet"))
    }


def train(resources: dict, instance: dg.DagsterInstance, run_config: dict = MODEL) -> dict:
    """The nightly model; its materialization's metadata."""
    result = dg.materialize([popularity_model], resources=resources, instance=instance, run_config=run_config)
    assert result.success
    return result.get_asset_materialization_events()[0].materialization.metadata


def _features(resources: dict, instance: dg.DagsterInstance) -> None:
    assert dg.materialize(
        [user_activity, popularity_labels, training_set],
        resources=resources,
        instance=instance,
        tags=range_tags(DAYS[0], DAYS[-1]),
    ).success


def _shards(resources: dict, instance: dg.DagsterInstance, days: list[str]) -> None:
    for day in days:
        assert dg.materialize(
            [training_shards], partition_key=day, resources=resources, instance=instance, run_config=SHARDS
        ).success


@contextmanager
def two_models(tmp: Path) -> Iterator[dict]:
    """The scenario, on one Dagster instance (open while the context is)."""
    lake = make_lake(tmp / "lake", SCALE)
    workspace = registry_resource(tmp)
    resources = {**lake.resources(), "workspace": workspace}
    with dg.instance_for_test() as instance:
        assert dg.materialize(
            [raw_users, raw_photos, stage_users, stage_photos, photo_features], resources=resources, instance=instance
        ).success
        assert dg.materialize(
            [image_encoder, image_embeddings, title_embeddings],
            resources=resources,
            instance=instance,
            run_config=FAST,
            tags=range_tags(DAYS[0], DAYS[-1]),
        ).success
        for day in DAYS:
            assert dg.materialize([stage_events], partition_key=day, resources=resources, instance=instance).success
        _features(resources, instance)
        _shards(resources, instance, DAYS[:2])
        v1, a = shard_bytes(Path(workspace.root)), train(resources, instance)
        append_hour(lake.store, late_day=DAYS[0])  # late logins for day 1: its authors' features change
        assert dg.materialize([stage_events], partition_key=DAYS[0], resources=resources, instance=instance).success
        _features(resources, instance)
        _shards(resources, instance, [DAYS[0], DAYS[2]])  # day 2 is not rebuilt: its pin stays
        v2, b = shard_bytes(Path(workspace.root)), train(resources, instance)
        yield {
            "lake": lake,
            "workspace": workspace,
            "registry": workspace.registry(),
            "resources": resources,
            "instance": instance,
            "v1": v1,
            "v2": v2,
            "a": a,
            "b": b,
            "truth": lake.store.read_parquet(GROUND_TRUTH_FILE),
            "tmp": tmp,
        }

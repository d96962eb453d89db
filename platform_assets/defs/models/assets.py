"""The `models` layer: the nightly popularity model, trained on pinned shards, pinned itself."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from platform_assets.defs.resources import LakeResource, WorkspaceResource
from platform_assets.defs.retry import IO_RETRY
from platform_assets.lib.dvc_pin import pin
from platform_assets.lib.model.run import MODELS, train_model
from platform_assets.lib.model.train import TrainConfig
from platform_assets.lib.simulator.generate import TRUTH_KEY


SHARDS = dg.AssetKey(["shards", "training_shards"])


class ModelConfig(dg.Config):
    window_days: int = Field(default=14, description="Train on the latest N pinned shard days; the last is the holdout.")
    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 1e-3
    seed: int = 0


@dg.asset(
    retry_policy=IO_RETRY,
    key=["models", "popularity_model"],
    deps=[SHARDS],
    group_name="models",
    kinds={"pytorch", "dvc"},
    description="MLP over image and title embeddings and tabular features; weights + manifest (DVC hash of every "
    "shard used, git revision, code version, seed, packages, holdout metrics), pinned by DVC.",
)
def popularity_model(
    context: dg.AssetExecutionContext, config: ModelConfig, lake: LakeResource, workspace: WorkspaceResource
) -> dg.MaterializeResult:
    store = lake.store()
    truth = store.read_parquet_if_exists(TRUTH_KEY)
    train = TrainConfig(config.epochs, config.batch_size, config.learning_rate, config.seed)
    root = Path(workspace.root)
    mid, manifest = train_model(root, config.window_days, train, truth)
    pinned = pin(root / MODELS / mid, workspace.dvc_remote)
    context.log.info(f"model {mid}: {manifest['metrics']}")
    used = {}
    for shard in manifest["shards"]:  # link the model to the shard materializations it was trained on
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=SHARDS, asset_partitions=[shard["day"]]), limit=1
        ).records
        used[shard["day"]] = {"dvc_hash": shard["md5"], "run_id": records[0].run_id if records else None}
    return dg.MaterializeResult(
        data_version=dg.DataVersion(pinned.md5),
        metadata={
            "model_id": mid,
            "data_version": manifest["data_version"],
            "shard_dvc_hashes": dg.MetadataValue.json({s["day"]: s["md5"] for s in manifest["shards"]}),
            "shard_materializations": dg.MetadataValue.json(used),
            "git_commit": str(manifest["git"]["commit"]),
            "code_version": manifest["code_version"],
            "seed": config.seed,
            "metrics": dg.MetadataValue.json(manifest["metrics"]),
            "dvc_hash": pinned.md5,
            "reproduce": f"platform-assets reproduce {mid}",
            **{k: v for k, v in manifest["metrics"].items() if isinstance(v, float)},
        },
    )


nightly_training_job = dg.define_asset_job(
    "nightly_training_job", selection=dg.AssetSelection.assets(["models", "popularity_model"])
)
nightly_training = dg.ScheduleDefinition(
    name="nightly_training",
    job=nightly_training_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    description="Retrain the popularity model every night on the latest window of pinned shards.",
)

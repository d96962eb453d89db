"""The `models` layer: the nightly popularity model, trained on the latest pinned shards, tagged
in the data registry with exactly the shard versions it read."""

from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from platform_assets.defs.executors import GPU_STEP
from platform_assets.defs.keys import POPULARITY_MODEL, TRAINING_SHARDS
from platform_assets.defs.materializations import latest_materialization, materialized_partitions
from platform_assets.defs.resources import LakeResource, WorkspaceResource
from platform_assets.defs.retry import IO_RETRY, fail_fast_unless_transient
from platform_assets.lib.lake_layout import GROUND_TRUTH_FILE
from platform_assets.lib.registry import Registry, RegistryError, model_tag
from platform_assets.lib.shards.remote import RemoteShardError

MOVED_FEATURES = 5  # the features a materialization lists, by PSI


class ModelConfig(dg.Config):
    window_days: int = Field(
        default=14, description="Train on the latest N shard days with samples; the last is the holdout."
    )
    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class ShardVersion:
    dvc_hash: str
    run_id: str
    device: str  # where the shards were written: recorded, though the bytes do not depend on it


def latest_shard_versions(instance: dg.DagsterInstance, window_days: int) -> dict[str, ShardVersion]:
    """The latest materialization of each of the newest `window_days` shard partitions with
    samples, from Dagster's event log: what was last written is what the model must read."""
    versions: dict[str, ShardVersion] = {}
    for day in sorted(materialized_partitions(instance, TRAINING_SHARDS), reverse=True):
        record = latest_materialization(instance, TRAINING_SHARDS, day)
        metadata = record.asset_materialization.metadata
        if metadata["samples"].value > 0:
            device = metadata["device"].value if "device" in metadata else "unknown"
            versions[day] = ShardVersion(metadata["dvc_hash"].value, record.run_id, str(device))
        if len(versions) == window_days:
            break
    return dict(sorted(versions.items()))


def changes_since_previous(registry: Registry, mid: str, log: dg.DagsterLogManager) -> dict[str, dg.MetadataValue]:
    """What changed since the model tagged before this one (`platform-assets diff` in numbers):
    partitions, samples, the features that moved most, the metric changes. Informational: the
    model is already tagged, so a diff that cannot be read is logged, not failed."""
    from platform_assets.lib.diff.report import diff_versions
    from platform_assets.lib.diff.versions import previous_model

    previous = previous_model(registry, mid)
    if previous is None:
        return {"previous_model": dg.MetadataValue.text("none: the first model")}
    try:
        diff = diff_versions(registry, previous, mid)
    except (RegistryError, RemoteShardError) as exc:
        log.warning(f"no diff against the previous model {previous}: {exc}")
        return {"previous_model": dg.MetadataValue.text(previous)}
    moved = sorted((s for s in diff.shift if s.psi is not None), key=lambda s: -s.psi)[:MOVED_FEATURES]
    return {
        "previous_model": dg.MetadataValue.text(previous),
        "diff": dg.MetadataValue.text(f"platform-assets diff {previous} {mid}"),
        **{f"partitions_{s}": dg.MetadataValue.int(diff.count(s)) for s in ("changed", "added", "removed")},
        **{
            f"samples_{what}": dg.MetadataValue.int(diff.total(f"{what}_samples"))
            for what in ("added", "removed", "changed")
        },
        "features_moved": dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {"feature": s.name, "psi": s.psi, "ks": s.ks, "mean_before": s.mean_a, "mean_now": s.mean_b}
                )
                for s in moved
            ],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("feature", "string", description="a tabular feature, or the label"),
                    dg.TableColumn("psi", "float", description="population stability index (docs/DIFF.md)"),
                    dg.TableColumn("ks", "float", description="two-sample Kolmogorov-Smirnov statistic"),
                    dg.TableColumn("mean_before", "float", description="in the previous model's changed data"),
                    dg.TableColumn("mean_now", "float", description="in this model's changed data"),
                ]
            ),
        ),
        **{f"{m.metric}_change": dg.MetadataValue.float(float(m.change)) for m in diff.metrics if m.change is not None},
    }


@dg.asset(
    op_tags=GPU_STEP,  # torch: the cluster's gpu queue
    retry_policy=IO_RETRY,
    key=POPULARITY_MODEL,
    deps=[TRAINING_SHARDS],
    group_name="models",
    kinds={"pytorch", "dvc"},
    description="MLP over image and title embeddings and tabular features; weights + manifest (DVC hash of every "
    "shard used, registry tag and commit, code version, seed, packages, holdout metrics), pinned and tagged.",
)
@fail_fast_unless_transient
def popularity_model(
    context: dg.AssetExecutionContext, config: ModelConfig, lake: LakeResource, workspace: WorkspaceResource
) -> dg.MaterializeResult:
    from platform_assets.lib.model.run import train_model  # torch: loaded by the runs that use it
    from platform_assets.lib.model.train import TrainConfig

    registry = workspace.registry()
    used = latest_shard_versions(context.instance, config.window_days)
    truth = lake.store().read_parquet_if_exists(GROUND_TRUTH_FILE)
    train = TrainConfig(config.epochs, config.batch_size, config.learning_rate, config.seed)
    trained = train_model(
        registry, {day: v.dvc_hash for day, v in used.items()}, train, truth, {d: v.device for d, v in used.items()}
    )
    mid, manifest, pinned = trained.model_id, trained.manifest, trained.pin
    tag = model_tag(mid)
    if trained.new:
        context.log.info(f"model {mid} tagged {tag} at {pinned.commit[:10]}: {manifest['metrics']}")
    else:
        context.log.info(
            f"model {mid} is already in the data registry (tag {tag} at {pinned.commit[:10]}): the same "
            "shard versions, code, seed and config; nothing trained or committed"
        )
    data_version = dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "partition": day,
                    "dvc_hash": v.dvc_hash,
                    "tag": tag,
                    "shard_run": v.run_id,
                    "materialization": f"/runs/{v.run_id}",
                }
            )
            for day, v in used.items()
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("partition", "string", description="shards/training_shards partition (day)"),
                dg.TableColumn("dvc_hash", "string", description="DVC hash of the partition: its data version"),
                dg.TableColumn(
                    "tag", "string", description="registry tag: git checkout <tag> -- shards && dvc checkout"
                ),
                dg.TableColumn("shard_run", "string", description="run that materialized this version"),
                dg.TableColumn("materialization", "string", description="that run's page in the UI"),
            ]
        ),
    )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(pinned.md5),
        metadata={
            "model_id": mid,
            "new_model": trained.new,
            "registry_tag": tag,
            "registry_commit": pinned.commit,
            "data_version": manifest["data_version"],
            "shard_versions": data_version,
            "code_version": manifest["code_version"],
            "seed": config.seed,
            "metrics": dg.MetadataValue.json(manifest["metrics"]),
            "dvc_hash": pinned.md5,
            "reproduce": f"platform-assets reproduce {mid}",
            **{k: v for k, v in manifest["metrics"].items() if isinstance(v, float)},
            **changes_since_previous(registry, mid, context.log),
        },
    )

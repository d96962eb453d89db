"""`training_shards`: one day of the training set as augmented, fixed-size, deterministic shards."""

import time

import dagster as dg
import pyarrow.compute as pc
from pydantic import Field

from platform_assets.defs.executors import GPU_STEP
from platform_assets.defs.keys import IMAGE_EMBEDDINGS, TITLE_EMBEDDINGS, TRAINING_SET, TRAINING_SHARDS
from platform_assets.defs.partitions import daily, partition_day
from platform_assets.defs.resources import ImagesResource, LakeResource, WorkspaceResource
from platform_assets.defs.retry import IO_RETRY, fail_fast_unless_transient
from platform_assets.defs.shards.automation import on_training_day_rewritten
from platform_assets.lib.lake_layout import (
    IMAGE_EMBEDDINGS_PATH,
    TITLE_EMBEDDINGS_PATH,
    TRAINING_SET_PATH,
    partition_key,
    staging_key,
)
from platform_assets.lib.registry import shard_dir
from platform_assets.lib.shards.selection import select_rows
from platform_assets.lib.shards.vectors import VectorCursor


class ShardConfig(dg.Config):
    views: int = Field(default=2, description="Augmented views written per training example.")
    seed: int = Field(default=0, description="Augmentation seed: same inputs and seed, same bytes.")
    target_shard_mb: int = Field(default=128, description="Target shard size; the last shard may be smaller.")
    compression: str = Field(
        default="none", description="Parquet codec: none (fastest to write and read), snappy, zstd."
    )
    device: str = Field(
        default="auto", description="Where augmentation runs: auto, cpu or cuda[:N]; same bytes on each."
    )
    workers: int | None = Field(
        default=None, description="Processes decoding JPEGs (default: one per core past 16 MB of JPEGs, else in line)."
    )
    batch_size: int = Field(
        default=256,
        description="Photos read, decoded and augmented at a time: with the shard size, what bounds memory.",
    )


@dg.asset(
    op_tags=GPU_STEP,  # torch: the cluster's gpu queue
    retry_policy=IO_RETRY,
    key=TRAINING_SHARDS,
    deps=[TRAINING_SET, IMAGE_EMBEDDINGS, TITLE_EMBEDDINGS],
    partitions_def=daily,
    automation_condition=on_training_day_rewritten,
    group_name="shards",
    kinds={"pytorch", "parquet"},
    description="K augmented views per training example (image crops/flips/jitter, hidden cells, title word "
    "dropout/swaps) in fixed-size Parquet shards with an index of names, counts, sizes and sha256; pinned "
    "by DVC, whose hash is the data version.",
)
@fail_fast_unless_transient
def training_shards(
    context: dg.AssetExecutionContext,
    config: ShardConfig,
    lake: LakeResource,
    workspace: WorkspaceResource,
    images: ImagesResource,
) -> dg.MaterializeResult:
    from platform_assets.lib.shards.samples import Augmentation, write_samples
    from platform_assets.lib.torch_device import pick_device  # torch: loaded by the runs that use it

    day = partition_day(context).isoformat()
    store, out = lake.store(), workspace.store()
    training_rows = store.read_parquet(partition_key(TRAINING_SET_PATH, day))
    vectors = [partition_key(path, day) for path in (IMAGE_EMBEDDINGS_PATH, TITLE_EMBEDDINGS_PATH)]
    if missing := [key for key in vectors if not store.exists(key)]:
        raise dg.Failure(
            f"{day}: the lake has no {' or '.join(missing)}: materialize "
            f"embeddings_job for {day} first (shards_automation does it for the last days by itself)",
            allow_retries=False,
        )
    days_photos = pc.field("photo_id").isin(training_rows["photo_id"])  # not the whole history's rows
    selected = select_rows(  # the day's training photos were posted that day: their vectors are the day's
        training_rows,
        store.read_parquet(staging_key("photos"), days_photos),
        *(VectorCursor.in_lake(store, key) for key in vectors),
    )
    device = pick_device(config.device)
    registry = workspace.registry()
    started = time.perf_counter()
    with registry.building(shard_dir(day)) as built:  # swapped in by the pin: never half a day in place
        shards = write_samples(
            selected,
            store,
            out,
            built,
            Augmentation(config.views, config.seed, images.size),
            device=device,
            target_bytes=config.target_shard_mb * 2**20,
            compression=config.compression,
            workers=config.workers,
            batch_size=config.batch_size,
        )
        seconds = time.perf_counter() - started
        samples = sum(s.samples for s in shards)
        pinned = registry.pin(shard_dir(day), f"shards {day}: {samples} samples, run {context.run_id}", built=built)
    context.log.info(f"pinned {pinned.path} as {pinned.md5} (commit {pinned.commit[:10]}) in {pinned.seconds:.2f}s")
    if skipped := selected.without_embeddings:
        context.log.warning(
            f"{skipped} training rows without an image or title embedding (quarantined images) left out"
        )
    total = sum(s.bytes for s in shards)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(pinned.md5),  # the DVC hash: Dagster and `dvc status` agree
        metadata={
            "dvc_hash": pinned.md5,
            "dvc_file": pinned.dvc_file,
            "dvc_remote": workspace.dvc_remote,
            "registry_commit": pinned.commit,
            "pin_seconds": round(pinned.seconds, 3),
            "samples": samples,
            "views": config.views,
            "image_size": images.size,
            "shards": len(shards),
            "bytes": total,
            "rows_without_embeddings": skipped,
            "device": str(device),
            "mb_per_second": round(total / 2**20 / seconds, 1) if seconds else 0.0,
            "index": dg.MetadataValue.json([s.__dict__ for s in shards]),
            "dagster/uri": dg.MetadataValue.path(out.uri(f"{shard_dir(day)}/index.json")),
        },
    )

"""`training_shards`: one day of the training set as augmented, fixed-size, deterministic shards."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from platform_assets.defs.embeddings.assets import IMAGE_EMBEDDINGS_FILE, TITLE_EMBEDDINGS_FILE
from platform_assets.defs.features.assets import TRAINING_SET
from platform_assets.defs.partitions import daily, partition_day
from platform_assets.defs.resources import LakeResource, WorkspaceResource
from platform_assets.defs.retry import IO_RETRY, transient_retries
from platform_assets.lib.embeddings.device import pick_device
from platform_assets.lib.lake_layout import partition_key, staging_key
from platform_assets.lib.registry import shard_dir
from platform_assets.lib.shards.samples import build_samples
from platform_assets.lib.shards.writer import write_shards


class ShardConfig(dg.Config):
    views: int = Field(default=2, description="Augmented views written per training example.")
    seed: int = Field(default=0, description="Augmentation seed: same inputs and seed, same bytes.")
    target_shard_mb: int = Field(default=128, description="Target shard size; the last shard may be smaller.")
    compression: str = Field(
        default="none", description="Parquet codec: none (fastest to write and read), snappy, zstd."
    )
    device: str = "auto"


def _vectors(table: pa.Table, ids: pa.Array) -> np.ndarray:
    """Rows of an embeddings table in the order of `ids` (all present)."""
    taken = table.take(pc.index_in(ids, table["photo_id"])).combine_chunks()
    return (
        taken["embedding"].chunk(0).values.to_numpy().reshape(len(ids), -1)
        if len(ids)
        else np.zeros((0, 1), np.float32)
    )


@dg.asset(
    retry_policy=IO_RETRY,
    key=["shards", "training_shards"],
    deps=[
        TRAINING_SET,
        dg.AssetKey(["embeddings", "image_embeddings"]),
        dg.AssetKey(["embeddings", "title_embeddings"]),
    ],
    partitions_def=daily,
    group_name="shards",
    kinds={"pytorch", "parquet"},
    description="K augmented views per training example (image crops/flips/jitter, hidden cells, title word "
    "dropout/swaps) in fixed-size Parquet shards with an index of names, counts, sizes and sha256; pinned "
    "by DVC, whose hash is the data version.",
)
@transient_retries
def training_shards(
    context: dg.AssetExecutionContext, config: ShardConfig, lake: LakeResource, workspace: WorkspaceResource
) -> dg.MaterializeResult:
    day = partition_day(context).isoformat()
    store, out = lake.store(), workspace.store()
    rows = store.read_parquet(partition_key("features/training_set", day))
    photos = store.read_parquet(staging_key("photos")).select(["photo_id", "title", "image_key"])
    image_emb, title_emb = store.read_parquet(IMAGE_EMBEDDINGS_FILE), store.read_parquet(TITLE_EMBEDDINGS_FILE)
    rows = rows.join(photos, "photo_id").sort_by("photo_id")
    usable = pc.and_(
        pc.is_in(rows["photo_id"], image_emb["photo_id"]), pc.is_in(rows["photo_id"], title_emb["photo_id"])
    )
    skipped = rows.num_rows - pc.sum(usable).as_py() if rows.num_rows else 0
    rows = rows.filter(usable) if rows.num_rows else rows
    device = pick_device(config.device)
    started = time.perf_counter()
    samples = build_samples(
        rows,
        store.read_many(rows["image_key"].to_pylist()),
        _vectors(image_emb, rows["photo_id"]),
        _vectors(title_emb, rows["photo_id"]),
        config.views,
        config.seed,
        device,
    )
    shards = write_shards(out, shard_dir(day), samples, config.target_shard_mb * 2**20, config.compression)
    seconds = time.perf_counter() - started
    pinned = workspace.registry().pin(shard_dir(day), f"shards {day}: {samples.num_rows} samples, run {context.run_id}")
    context.log.info(f"pinned {pinned.path} as {pinned.md5} (commit {pinned.commit[:10]}) in {pinned.seconds:.2f}s")
    if skipped:
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
            "samples": samples.num_rows,
            "views": config.views,
            "shards": len(shards),
            "bytes": total,
            "rows_without_embeddings": skipped,
            "device": str(device),
            "mb_per_second": round(total / 2**20 / seconds, 1) if seconds else 0.0,
            "index": dg.MetadataValue.json([s.__dict__ for s in shards]),
            "dagster/uri": dg.MetadataValue.path(out.uri(f"{shard_dir(day)}/index.json")),
        },
    )


shards_job = dg.define_asset_job(
    "shards_job",
    selection=dg.AssetSelection.assets(["shards", "training_shards"]),
    partitions_def=daily,
    description="Write one day's augmented training shards.",
)

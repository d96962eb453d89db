"""The `embeddings` layer: an image encoder, image and title embeddings (torch; GPU when present).

Embeddings are stored by the photo's posting day and refreshed a day at a time: a row is reused
while its photo's content hash (image bytes or title) and the model version are unchanged, so
only new or changed photos are encoded, and adding a day costs the same whatever the history.
"""

from datetime import timedelta

import dagster as dg
from pydantic import Field

from platform_assets.defs.executors import GPU_STEP
from platform_assets.defs.keys import IMAGE_EMBEDDINGS, IMAGE_ENCODER, PHOTOS, TITLE_EMBEDDINGS
from platform_assets.defs.partitions import daily, partition_window
from platform_assets.defs.resources import ImagesResource, LakeResource
from platform_assets.defs.retry import IO_RETRY, fail_fast_unless_transient
from platform_assets.lib.embeddings.encoder_pointer import EncoderPointer, read_encoder_pointer, write_encoder_pointer
from platform_assets.lib.lake_layout import (
    IMAGE_EMBEDDINGS_PATH,
    IMAGE_QUARANTINE_PATH,
    TITLE_EMBEDDINGS_PATH,
    day_range,
    encoder_weights_key,
    partition_key,
    posted_on,
    staging_key,
)
from platform_assets.lib.lake_store import LakeStore


class ImageEncoderConfig(dg.Config):
    weights_path: str | None = Field(
        default=None,
        description="Use these weights instead of training: a local state_dict of ours or of torchvision's resnet18 "
        "(e.g. ImageNet weights; its classifier is dropped).",
    )
    arch: str = Field(default="resnet-small", description="Architecture to train: resnet-small or resnet18.")
    epochs: int = Field(default=3, description="SimCLR epochs over the sample of the lake's images.")
    sample_mb: int = Field(
        default=1024,
        description="Decoded pixels the encoder trains on, at most: every image while they fit (7,000 at 224 px, "
        "87,000 at 64 px), else a deterministic sample. Bounds the step's memory whatever the lake's size.",
    )
    batch_size: int = 128
    learning_rate: float = 2e-3
    seed: int = 0
    device: str = Field(default="auto", description="auto (CUDA when present), cpu or cuda[:N].")


class EmbeddingConfig(dg.Config):
    batch_size: int = Field(default=256, description="Photos read, hashed, decoded and embedded at a time.")
    workers: int | None = Field(
        default=None,
        description="Processes decoding JPEGs (default: one per core past 16 MB of JPEGs, else in line; on CUDA the GPU decodes).",
    )
    device: str = "auto"


# Days a photos extract or a new encoder refreshes by itself; older days are a backfill to choose.
REFRESH_DAYS = 3
on_new_photos = (
    dg.AutomationCondition.in_latest_time_window(timedelta(days=REFRESH_DAYS))
    & (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label(f"new photos, last {REFRESH_DAYS} days")
_BY_POSTING_DAY = {
    "partitions_def": daily,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "automation_condition": on_new_photos,
    "group_name": "embeddings",
}


@dg.asset(
    op_tags=GPU_STEP,  # torch: the cluster's gpu queue
    retry_policy=IO_RETRY,
    key=IMAGE_ENCODER,
    deps=[PHOTOS],
    group_name="embeddings",
    kinds={"pytorch"},
    description="ResNet-style image encoder trained on the lake's images with SimCLR (or weights from a file).",
)
@fail_fast_unless_transient
def image_encoder(
    context: dg.AssetExecutionContext, config: ImageEncoderConfig, lake: LakeResource, images: ImagesResource
) -> dg.MaterializeResult:
    from platform_assets.lib.embeddings.image_encoder import load_weights
    from platform_assets.lib.embeddings.refresh import encoded_weights, train_encoder
    from platform_assets.lib.torch_device import pick_device  # torch: loaded by the runs that use it

    store = lake.store()
    device = pick_device(config.device)
    if config.weights_path:
        arch, state = load_weights(config.weights_path)
        encoder = encoded_weights(state, {"source": config.weights_path})
    else:
        arch = config.arch
        encoder = train_encoder(
            store,
            store.read_parquet(staging_key("photos")).select(["photo_id", "image_key"]),
            size=images.size,
            sample_bytes=config.sample_mb * 2**20,
            epochs=config.epochs,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            seed=config.seed,
            device=device,
            arch=arch,
        )
    version, metrics, key = encoder.version, encoder.metrics, encoder_weights_key(encoder.version)
    store.write_bytes(key, encoder.weights)
    write_encoder_pointer(store, EncoderPointer(version=version, key=key, arch=arch, image_size=images.size))
    context.log.info(f"image encoder {version} on {device} at {images.size} px: {metrics}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "encoder_version": version,
            "architecture": arch,
            "image_size": images.size,
            "device": str(device),
            "dagster/uri": store.uri(key),
            **metrics,
        },
    )


def _refreshed_days(context: dg.AssetExecutionContext, store: LakeStore, dataset: str, refresh_day) -> dict:
    """Each day of the run's range refreshed in turn (`refresh_day(day, photos posted that day,
    the day's key)` rewrites the day's table → Refresh); the range's totals as metadata."""
    first, last = partition_window(context)
    totals = {"embedded": 0, "reused": 0, "quarantined": 0, "rows": 0, "bytes": 0, "seconds": 0.0}
    for day in day_range(first, last):
        result = refresh_day(
            day, store.read_parquet(staging_key("photos"), posted_on(day)), partition_key(dataset, day)
        )
        totals["bytes"] += result.bytes
        totals["rows"] += result.rows
        totals["seconds"] += result.seconds
        totals["embedded"] += result.embedded
        totals["reused"] += result.reused
        totals["quarantined"] += result.quarantine.num_rows
        context.log.info(
            f"{dataset} {day}: {result.embedded} embedded, {result.reused} reused, "
            f"{result.quarantine.num_rows} quarantined, {result.rows} rows"
        )
    per_second = round(totals["embedded"] / totals["seconds"], 1) if totals["embedded"] and totals["seconds"] else 0.0
    return {
        "days": f"{first} .. {last}",
        "dagster/row_count": totals["rows"],
        "dagster/uri": dg.MetadataValue.path(store.uri(f"{dataset}/")),
        "bytes": totals["bytes"],
        "embedded": totals["embedded"],
        "reused": totals["reused"],
        "quarantined": totals["quarantined"],
        "per_second": per_second,
    }


@dg.asset(
    op_tags=GPU_STEP,  # torch: the cluster's gpu queue
    retry_policy=IO_RETRY,
    key=IMAGE_EMBEDDINGS,
    deps=[PHOTOS, IMAGE_ENCODER],
    kinds={"pytorch", "parquet"},
    description="One vector per photo from the image encoder, by posting day; unreadable images go to "
    "`embeddings/image_quarantine` in the lake (same day).",
    **_BY_POSTING_DAY,
)
@fail_fast_unless_transient
def image_embeddings(
    context: dg.AssetExecutionContext, config: EmbeddingConfig, lake: LakeResource
) -> dg.MaterializeResult:
    from platform_assets.lib.embeddings.refresh import refresh_image_embeddings
    from platform_assets.lib.torch_device import pick_device

    store = lake.store()
    device = pick_device(config.device)
    encoder = read_encoder_pointer(store)
    weights, decoders = store.read_bytes(encoder.key), set()

    def refresh_day(day: str, photos, key: str):
        result = refresh_image_embeddings(
            store,
            photos.select(["photo_id", "image_key"]),
            key,
            weights=weights,
            version=encoder.version,
            arch=encoder.arch,
            size=encoder.image_size,
            device=device,
            batch_size=config.batch_size,
            workers=config.workers,
        )
        store.write_parquet(partition_key(IMAGE_QUARANTINE_PATH, day), result.quarantine)
        if result.quarantine.num_rows:
            context.log.warning(
                f"{day}: {result.quarantine.num_rows} unreadable images quarantined: "
                f"{result.quarantine['reason'].to_pylist()[:3]}"
            )
        decoders.add(result.decoder)
        return result

    metadata = _refreshed_days(context, store, IMAGE_EMBEDDINGS_PATH, refresh_day)
    return dg.MaterializeResult(
        metadata=metadata
        | {
            "encoder_version": encoder.version,
            "device": str(device),
            "decoder": ", ".join(sorted(decoders)),
            "image_size": encoder.image_size,
        }
    )


@dg.asset(
    op_tags=GPU_STEP,  # torch: the cluster's gpu queue
    retry_policy=IO_RETRY,
    key=TITLE_EMBEDDINGS,
    deps=[PHOTOS],
    kinds={"pytorch", "parquet"},
    description="all-MiniLM-L6-v2 embedding of each photo's title (384 floats, L2-normalised), by posting day.",
    **_BY_POSTING_DAY,
)
@fail_fast_unless_transient
def title_embeddings(
    context: dg.AssetExecutionContext, config: EmbeddingConfig, lake: LakeResource
) -> dg.MaterializeResult:
    from platform_assets.lib.embeddings.refresh import refresh_title_embeddings
    from platform_assets.lib.embeddings.titles import model_version
    from platform_assets.lib.torch_device import pick_device

    store = lake.store()
    device = pick_device(config.device)
    version = model_version()
    metadata = _refreshed_days(
        context,
        store,
        TITLE_EMBEDDINGS_PATH,
        lambda _day, photos, key: refresh_title_embeddings(store, photos, key, version, device, config.batch_size),
    )
    return dg.MaterializeResult(metadata=metadata | {"model_version": version, "device": str(device)})

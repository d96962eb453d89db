"""The `embeddings` layer: an image encoder, image and title embeddings (torch; GPU when present).

Embeddings are incremental: a row is reused while its photo's content hash (image bytes or
title) and the model version are unchanged, so only new or changed photos are encoded.
"""

import json

import dagster as dg
from pydantic import Field

from platform_assets.defs.keys import IMAGE_EMBEDDINGS, IMAGE_ENCODER, PHOTOS, TITLE_EMBEDDINGS
from platform_assets.defs.metadata import table_metadata
from platform_assets.defs.resources import ImagesResource, LakeResource
from platform_assets.defs.retry import IO_RETRY, transient_retries
from platform_assets.lib.embeddings.sizes import DEFAULT_IMAGE_SIZE
from platform_assets.lib.lake_layout import (
    EMBEDDINGS_ROW_GROUP_ROWS,
    ENCODER_POINTER,
    IMAGE_EMBEDDINGS_FILE,
    IMAGE_QUARANTINE_FILE,
    TITLE_EMBEDDINGS_FILE,
    encoder_weights_key,
    staging_key,
)


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
    batch_size: int = 256
    workers: int | None = Field(
        default=None,
        description="Processes decoding JPEGs (default: one per core past 16 MB of JPEGs, else in line; on CUDA the GPU decodes).",
    )
    device: str = "auto"


@dg.asset(
    retry_policy=IO_RETRY,
    key=IMAGE_ENCODER,
    deps=[PHOTOS],
    group_name="embeddings",
    kinds={"pytorch"},
    description="ResNet-style image encoder trained on the lake's images with SimCLR (or weights from a file).",
)
@transient_retries
def image_encoder(
    context: dg.AssetExecutionContext, config: ImageEncoderConfig, lake: LakeResource, images: ImagesResource
) -> dg.MaterializeResult:
    from platform_assets.lib.embeddings.device import pick_device  # torch: loaded by the runs that use it
    from platform_assets.lib.embeddings.image_encoder import load_weights
    from platform_assets.lib.embeddings.refresh import encoded_weights, train_encoder

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
            images.size,
            config.sample_mb * 2**20,
            config.epochs,
            config.batch_size,
            config.learning_rate,
            config.seed,
            device,
            arch,
        )
    version, metrics, key = encoder.version, encoder.metrics, encoder_weights_key(encoder.version)
    store.write_bytes(key, encoder.weights)
    pointer = {"version": version, "key": key, "arch": arch, "image_size": images.size}
    store.write_bytes(ENCODER_POINTER, json.dumps(pointer).encode())
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


@dg.asset(
    retry_policy=IO_RETRY,
    key=IMAGE_EMBEDDINGS,
    deps=[PHOTOS, IMAGE_ENCODER],
    group_name="embeddings",
    kinds={"pytorch", "parquet"},
    description="One vector per photo from the image encoder; unreadable images go to `image_quarantine` in the lake.",
)
@transient_retries
def image_embeddings(
    context: dg.AssetExecutionContext, config: EmbeddingConfig, lake: LakeResource
) -> dg.MaterializeResult:
    from platform_assets.lib.embeddings.device import pick_device
    from platform_assets.lib.embeddings.refresh import refresh_image_embeddings

    store = lake.store()
    device = pick_device(config.device)
    pointer = json.loads(store.read_bytes(ENCODER_POINTER))
    image_size = pointer.get("image_size", DEFAULT_IMAGE_SIZE)  # encoders from before the setting read 64 px
    photos = store.read_parquet(staging_key("photos"))
    result = refresh_image_embeddings(
        photos,
        store.read_many(photos["image_key"].to_pylist()),
        store.read_parquet_if_exists(IMAGE_EMBEDDINGS_FILE),
        store.read_bytes(pointer["key"]),
        pointer["version"],
        pointer.get("arch", "resnet-small"),
        image_size,
        device,
        config.batch_size,
        config.workers,
    )
    size = store.write_parquet(IMAGE_EMBEDDINGS_FILE, result.table, EMBEDDINGS_ROW_GROUP_ROWS)
    store.write_parquet(IMAGE_QUARANTINE_FILE, result.quarantine)
    if result.quarantine.num_rows:
        context.log.warning(
            f"{result.quarantine.num_rows} unreadable images quarantined: {result.quarantine['reason'].to_pylist()[:3]}"
        )
    return dg.MaterializeResult(
        metadata=table_metadata(result.table.drop_columns(["embedding"]), store.uri(IMAGE_EMBEDDINGS_FILE), size)
        | {
            "encoder_version": pointer["version"],
            "device": str(device),
            "embedded": result.embedded,
            "reused": result.reused,
            "quarantined": result.quarantine.num_rows,
            "decoder": result.decoder,
            "image_size": image_size,
            "images_per_second": result.per_second,
        }
    )


@dg.asset(
    retry_policy=IO_RETRY,
    key=TITLE_EMBEDDINGS,
    deps=[PHOTOS],
    group_name="embeddings",
    kinds={"pytorch", "parquet"},
    description="all-MiniLM-L6-v2 embedding of each photo's title (384 floats, L2-normalised).",
)
@transient_retries
def title_embeddings(config: EmbeddingConfig, lake: LakeResource) -> dg.MaterializeResult:
    from platform_assets.lib.embeddings.device import pick_device
    from platform_assets.lib.embeddings.refresh import refresh_title_embeddings
    from platform_assets.lib.embeddings.titles import model_version

    store = lake.store()
    device = pick_device(config.device)
    version = model_version()
    result = refresh_title_embeddings(
        store.read_parquet(staging_key("photos")),
        store.read_parquet_if_exists(TITLE_EMBEDDINGS_FILE),
        version,
        device,
        config.batch_size,
    )
    size = store.write_parquet(TITLE_EMBEDDINGS_FILE, result.table, EMBEDDINGS_ROW_GROUP_ROWS)
    return dg.MaterializeResult(
        metadata=table_metadata(result.table.drop_columns(["embedding"]), store.uri(TITLE_EMBEDDINGS_FILE), size)
        | {
            "model_version": version,
            "device": str(device),
            "embedded": result.embedded,
            "reused": result.reused,
            "titles_per_second": result.per_second,
        }
    )


embeddings_job = dg.define_asset_job(
    "embeddings_job",
    selection=dg.AssetSelection.groups("embeddings"),
    description="Train (or load) the image encoder and bring image and title embeddings up to date.",
)

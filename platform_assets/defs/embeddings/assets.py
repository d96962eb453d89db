"""The `embeddings` layer: an image encoder, image and title embeddings (torch; GPU when present).

Embeddings are incremental: a row is reused while its photo's content hash (image bytes or
title) and the model version are unchanged, so only new or changed photos are encoded.
"""

import io
import json
import time

import dagster as dg
import numpy as np
import pyarrow as pa
import torch
from pydantic import Field

from platform_assets.defs.metadata import table_metadata
from platform_assets.defs.resources import LakeResource
from platform_assets.defs.retry import IO_RETRY, transient_retries
from platform_assets.lib.embeddings.device import inference_mode, pick_device, to_device
from platform_assets.lib.embeddings.image_encoder import load_encoder, load_weights, train_simclr, weights_version
from platform_assets.lib.embeddings.images import as_float, decode, image_batches
from platform_assets.lib.embeddings.incremental import content_hash, embedding_table, split_todo
from platform_assets.lib.embeddings.titles import embed_titles, model_version
from platform_assets.lib.lake_layout import staging_key

PHOTOS = dg.AssetKey(["staging", "photos"])
IMAGE_ENCODER = dg.AssetKey(["embeddings", "image_encoder"])
ENCODER_POINTER = "embeddings/image_encoder/current.json"
IMAGE_EMBEDDINGS_FILE = "embeddings/image_embeddings.parquet"
IMAGE_QUARANTINE_FILE = "embeddings/image_quarantine.parquet"
TITLE_EMBEDDINGS_FILE = "embeddings/title_embeddings.parquet"


class ImageEncoderConfig(dg.Config):
    weights_path: str | None = Field(
        default=None,
        description="Use these weights instead of training: a local state_dict of ours or of torchvision's resnet18 "
        "(e.g. ImageNet weights; its classifier is dropped).",
    )
    arch: str = Field(default="resnet-small", description="Architecture to train: resnet-small or resnet18.")
    epochs: int = Field(default=3, description="SimCLR epochs over the lake's images.")
    batch_size: int = 128
    learning_rate: float = 2e-3
    seed: int = 0
    device: str = Field(default="auto", description="auto (CUDA when present), cpu or cuda[:N].")


class EmbeddingConfig(dg.Config):
    batch_size: int = 256
    workers: int = Field(default=2, description="DataLoader worker processes decoding JPEGs.")
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
    context: dg.AssetExecutionContext, config: ImageEncoderConfig, lake: LakeResource
) -> dg.MaterializeResult:
    store = lake.store()
    device = pick_device(config.device)
    arch = config.arch
    if config.weights_path:
        arch, state = load_weights(config.weights_path)
        metrics: dict = {"source": config.weights_path}
    else:
        photos = store.read_parquet(staging_key("photos"))
        images = []
        for blob in store.read_many(photos["image_key"].to_pylist()):
            try:
                images.append(decode(blob))
            except ValueError:
                continue  # broken images are reported by image_embeddings
        started = time.perf_counter()
        result = train_simclr(
            as_float(torch.stack(images)),
            config.epochs,
            config.batch_size,
            config.learning_rate,
            config.seed,
            device,
            arch,
        )
        state = result.state_dict
        metrics = {
            "source": "simclr",
            "images": len(images),
            "epochs": config.epochs,
            "seconds": round(time.perf_counter() - started, 1),
            "first_loss": round(result.losses[0], 4),
            "last_loss": round(result.losses[-1], 4),
        }
    version = weights_version(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    key = f"embeddings/image_encoder/weights-{version}.pt"
    store.write_bytes(key, buf.getvalue())
    store.write_bytes(ENCODER_POINTER, json.dumps({"version": version, "key": key, "arch": arch}).encode())
    context.log.info(f"image encoder {version} on {device}: {metrics}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "encoder_version": version,
            "architecture": arch,
            "device": str(device),
            "dagster/uri": store.uri(key),
            **metrics,
        },
    )


@dg.asset(
    retry_policy=IO_RETRY,
    key=["embeddings", "image_embeddings"],
    deps=[PHOTOS, IMAGE_ENCODER],
    group_name="embeddings",
    kinds={"pytorch", "parquet"},
    description="One vector per photo from the image encoder; unreadable images go to `image_quarantine` in the lake.",
)
@transient_retries
def image_embeddings(
    context: dg.AssetExecutionContext, config: EmbeddingConfig, lake: LakeResource
) -> dg.MaterializeResult:
    store = lake.store()
    device = pick_device(config.device)
    pointer = json.loads(store.read_bytes(ENCODER_POINTER))
    photos = store.read_parquet(staging_key("photos"))
    blobs = store.read_many(photos["image_key"].to_pylist())
    current = pa.table({"photo_id": photos["photo_id"], "content_hash": pa.array([content_hash(b) for b in blobs])})
    keep, todo = split_todo(current, store.read_parquet_if_exists(IMAGE_EMBEDDINGS_FILE), pointer["version"])
    todo_index = {pid: i for i, pid in enumerate(photos["photo_id"].to_pylist())}
    todo_blobs = [blobs[todo_index[pid]] for pid in todo["photo_id"].to_pylist()]

    model = load_encoder(
        torch.load(io.BytesIO(store.read_bytes(pointer["key"])), weights_only=True),
        device,
        pointer.get("arch", "resnet-small"),
    )
    vectors, errors = np.zeros((len(todo_blobs), model.dim), np.float32), {}
    started = time.perf_counter()
    with inference_mode(device):
        for idx, batch, err in image_batches(todo_blobs, config.batch_size, device, config.workers):
            vectors[idx.numpy()] = model(as_float(to_device(batch, device))).float().cpu().numpy()
            errors.update({int(i): e for i, e in zip(idx, err) if e})
    seconds = time.perf_counter() - started
    ok = np.array([i not in errors for i in range(len(todo_blobs))], dtype=bool)
    new = embedding_table(
        todo["photo_id"].filter(pa.array(ok)),
        todo["content_hash"].filter(pa.array(ok)),
        pointer["version"],
        vectors[ok],
    )
    table = (
        pa.concat_tables([t for t in (keep, new) if t is not None]).sort_by("photo_id")
        if keep is not None
        else new.sort_by("photo_id")
    )
    quarantine = pa.table(
        {
            "photo_id": pa.array([todo["photo_id"][i].as_py() for i in errors], pa.int64()),
            "image_key": pa.array(
                [photos["image_key"][todo_index[todo["photo_id"][i].as_py()]].as_py() for i in errors], pa.string()
            ),
            "reason": pa.array(list(errors.values()), pa.string()),
        }
    )
    size = store.write_parquet(IMAGE_EMBEDDINGS_FILE, table)
    store.write_parquet(IMAGE_QUARANTINE_FILE, quarantine)
    if errors:
        context.log.warning(f"{len(errors)} unreadable images quarantined: {list(errors.values())[:3]}")
    return dg.MaterializeResult(
        metadata=table_metadata(table.drop_columns(["embedding"]), store.uri(IMAGE_EMBEDDINGS_FILE), size)
        | {
            "encoder_version": pointer["version"],
            "device": str(device),
            "embedded": int(ok.sum()),
            "reused": keep.num_rows if keep is not None else 0,
            "quarantined": len(errors),
            "images_per_second": round(len(todo_blobs) / seconds, 1) if todo_blobs else 0.0,
        }
    )


@dg.asset(
    retry_policy=IO_RETRY,
    key=["embeddings", "title_embeddings"],
    deps=[PHOTOS],
    group_name="embeddings",
    kinds={"pytorch", "parquet"},
    description="all-MiniLM-L6-v2 embedding of each photo's title (384 floats, L2-normalised).",
)
@transient_retries
def title_embeddings(config: EmbeddingConfig, lake: LakeResource) -> dg.MaterializeResult:
    store = lake.store()
    device = pick_device(config.device)
    photos = store.read_parquet(staging_key("photos"))
    titles = [t or "" for t in photos["title"].to_pylist()]
    current = pa.table(
        {"photo_id": photos["photo_id"], "content_hash": pa.array([content_hash(t.encode()) for t in titles])}
    )
    version = model_version()
    keep, todo = split_todo(current, store.read_parquet_if_exists(TITLE_EMBEDDINGS_FILE), version)
    by_id = dict(zip(photos["photo_id"].to_pylist(), titles))
    started = time.perf_counter()
    vectors = (
        embed_titles([by_id[i] for i in todo["photo_id"].to_pylist()], device, config.batch_size)
        if todo.num_rows
        else np.zeros((0, 384), np.float32)
    )
    seconds = time.perf_counter() - started
    new = embedding_table(todo["photo_id"], todo["content_hash"], version, vectors)
    table = (pa.concat_tables([keep, new]) if keep is not None else new).sort_by("photo_id")
    size = store.write_parquet(TITLE_EMBEDDINGS_FILE, table)
    return dg.MaterializeResult(
        metadata=table_metadata(table.drop_columns(["embedding"]), store.uri(TITLE_EMBEDDINGS_FILE), size)
        | {
            "model_version": version,
            "device": str(device),
            "embedded": todo.num_rows,
            "reused": keep.num_rows if keep is not None else 0,
            "titles_per_second": round(todo.num_rows / seconds, 1) if todo.num_rows else 0.0,
        }
    )


embeddings_job = dg.define_asset_job(
    "embeddings_job",
    selection=dg.AssetSelection.groups("embeddings"),
    description="Train (or load) the image encoder and bring image and title embeddings up to date.",
)

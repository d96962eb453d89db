"""Training samples: K augmented views of each training-set row, with its embeddings and image."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from platform_assets.lib.heap import release_freed_memory
from platform_assets.lib.images.augment import augment, draw_params
from platform_assets.lib.images.batches import stored_image_batches
from platform_assets.lib.images.sizes import DEFAULT_IMAGE_SIZE
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.shards.augment_rows import drop_cells, perturb_title, rng_for
from platform_assets.lib.shards.selection import Selection
from platform_assets.lib.shards.tabular import TABULAR
from platform_assets.lib.shards.writer import GatheredColumn, ShardInfo, StreamedColumn, write_shards
from platform_assets.lib.torch_device import to_device

IMAGE, IMAGE_POSITION = "image", 4  # the pixels' column and its place in the schema
VECTORS = {"image_embedding": 5, "title_embedding": 6}  # gathered a shard at a time, and their places
ADDED = {IMAGE, *VECTORS}


def sample_schema(image_size: int, image_dim: int, title_dim: int) -> pa.Schema:
    """`image` is the view's (3, size, size) uint8 pixels: readers infer the size from the width."""
    return pa.schema(
        [
            ("photo_id", pa.int64()),
            ("view", pa.int16()),
            ("posted_at", pa.timestamp("us", tz="UTC")),
            ("label", pa.float32()),
            ("image", pa.binary(3 * image_size * image_size)),
            ("image_embedding", pa.list_(pa.float32(), image_dim)),
            ("title_embedding", pa.list_(pa.float32(), title_dim)),
            ("title", pa.string()),
            ("features", pa.list_(pa.float32(), len(TABULAR))),
            ("feature_mask", pa.list_(pa.float32(), len(TABULAR))),
        ]
    )


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.astype(np.float32).reshape(-1)), values.shape[1])


@dataclass(frozen=True)
class Augmentation:
    """What makes a day's samples: `views` per training row, seeded, at `image_size` px."""

    views: int = 2
    seed: int = 0
    image_size: int = DEFAULT_IMAGE_SIZE
    p_drop_cell: float = 0.1
    p_drop_word: float = 0.1
    p_swap_word: float = 0.1


def sample_columns(rows: pa.Table, aug: Augmentation) -> pa.Table:
    """Every column of the day's samples but `image` and the two vectors, in (photo_id, view)
    order: sample k is view k % views of row k // views. `rows` are training-set rows sorted by
    photo_id (ids unique). These are held for the whole day (tens of bytes a sample); the
    vectors are gathered a shard at a time, and the pixels, 3·S² bytes a sample, are streamed
    by `sample_pixels`."""
    ids = rows["photo_id"].to_pylist()
    tabular = (
        np.column_stack([rows[c].to_numpy(zero_copy_only=False).astype(np.float32) for c in TABULAR])
        if ids
        else np.zeros((0, len(TABULAR)), np.float32)
    )
    titles = [t or "" for t in rows["title"].to_pylist()] if "title" in rows.column_names else [""] * len(ids)
    columns: dict[str, list] = {k: [] for k in ("photo_id", "view", "features", "mask", "title")}
    for view in range(aug.views):
        for i, pid in enumerate(ids):
            rng = rng_for(aug.seed, pid, view)
            values, mask = drop_cells(tabular[i], rng, aug.p_drop_cell)
            columns["photo_id"].append(pid)
            columns["view"].append(view)
            columns["features"].append(values)
            columns["mask"].append(mask)
            columns["title"].append(perturb_title(titles[i], rng, aug.p_drop_word, aug.p_swap_word))
    order = np.lexsort((np.array(columns["view"]), np.array(columns["photo_id"]))) if ids else np.array([], int)
    src = np.tile(np.arange(len(ids)), aug.views)[order] if ids else np.array([], int)
    schema = sample_schema(aug.image_size, 1, 1)
    return pa.table(
        [
            pa.array(np.array(columns["photo_id"], np.int64)[order]),
            pa.array(np.array(columns["view"], np.int16)[order]),
            rows["posted_at"].take(pa.array(src, pa.int64())),
            pa.array(rows["popularity_score"].to_numpy(zero_copy_only=False).astype(np.float32)[src]),
            pa.array([columns["title"][i] for i in order], pa.string()),
            _fixed(np.array(columns["features"], np.float32).reshape(-1, len(TABULAR))[order]),
            _fixed(np.array(columns["mask"], np.float32).reshape(-1, len(TABULAR))[order]),
        ],
        schema=pa.schema([f for f in schema if f.name not in ADDED]),
    )


def sample_pixels(
    photo_ids: list[int],
    images: Iterable[tuple[torch.Tensor, torch.Tensor, list[str]]],
    aug: Augmentation,
    device: torch.device,
) -> Iterator[np.ndarray]:
    """The augmented views of each batch of decoded photos (`images`: indices into `photo_ids`,
    uint8 images, errors, in order), as (photos × views, 3·S·S) uint8 rows in (photo_id, view)
    order. The integer augmentation gives the same bytes on any device and batch size."""
    for idx, batch, errors in images:
        batch_ids = [photo_ids[i] for i in idx.tolist()]
        if bad := [f"photo {pid}: {e}" for pid, e in zip(batch_ids, errors) if e]:
            raise ValueError(f"unreadable training images (the embeddings should have quarantined them): {bad[:3]}")
        on_device = to_device(batch, device)
        views = [augment(on_device, draw_params(aug.seed, batch_ids, v)).cpu().numpy() for v in range(aug.views)]
        yield np.stack(views, axis=1).reshape(len(batch_ids) * aug.views, -1)
        release_freed_memory()  # the batch's decoded and augmented tensors


def write_samples(
    selected: Selection,
    images: LakeStore,
    out: LakeStore,
    prefix: str,
    aug: Augmentation,
    *,
    device: torch.device,
    target_bytes: int,
    compression: str = "none",
    workers: int | None = None,
    batch_size: int = 256,
) -> list[ShardInfo]:
    """A day's samples written as shards under `prefix` while they are built: JPEGs are read
    and decoded `batch_size` photos at a time (on the CPU, in `workers` processes, whatever the
    device: a GPU decoder's pixels differ from libjpeg's), augmented on `device`, and each shard
    written once its rows are complete: the day's pixels, JPEGs and vectors are never all in
    memory (the per-photo columns are). The bytes are those of building the day at once."""
    rows = selected.rows
    columns = sample_columns(rows, aug)
    release_freed_memory()  # its per-sample Python lists, hundreds of bytes a sample
    schema = sample_schema(aug.image_size, selected.image_vectors.dim, selected.title_vectors.dim)
    photo_ids = rows["photo_id"].to_numpy()
    vectors = (selected.image_vectors, selected.title_vectors)
    gathered = [
        GatheredColumn(schema.field(name), position, photo_ids, v, aug.views)
        for (name, position), v in zip(VECTORS.items(), vectors)
    ]
    decoded = stored_image_batches(images, rows["image_key"].to_pylist(), aug.image_size, batch_size, device, workers)
    pixels = sample_pixels(
        rows["photo_id"].to_pylist(), ((b.indices, b.images, b.errors) for b in decoded), aug, device
    )
    field = sample_schema(aug.image_size, 1, 1).field(IMAGE)
    streamed = StreamedColumn(field, IMAGE_POSITION, pixels)
    return write_shards(out, prefix, columns, target_bytes, compression, streamed=streamed, gathered=gathered)

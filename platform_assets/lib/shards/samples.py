"""Training samples: K augmented views of each training-set row, with its embeddings and image."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from platform_assets.lib.embeddings.augment import augment, draw_params
from platform_assets.lib.embeddings.device import to_device
from platform_assets.lib.embeddings.images import image_batches
from platform_assets.lib.shards.augment_rows import drop_cells, perturb_title, rng_for

TABULAR = [
    "posted_hour_local",
    "posted_weekday_local",
    "title_length",
    "title_words",
    "author_tenure_days",
    "author_logins_today",
    "author_likes_given_7d",
    "author_likes_received_7d",
    "author_posts_30d",
    "author_sessions_7d",
]


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


def build_samples(
    rows: pa.Table,
    images: list[bytes],
    image_vectors: np.ndarray,
    title_vectors: np.ndarray,
    views: int,
    seed: int,
    image_size: int,
    device: torch.device,
    workers: int | None = None,
    p_drop_cell: float = 0.1,
    p_drop_word: float = 0.1,
    p_swap_word: float = 0.1,
    batch_size: int = 256,
) -> pa.Table:
    """`rows` are training-set rows sorted by photo_id, aligned with `images` and both vector arrays.

    JPEGs are decoded on the CPU (libjpeg through Pillow, in `workers` processes) whatever the
    device: a GPU decoder's pixels differ from libjpeg's, and the shard bytes must not depend
    on where they were written. The integer augmentation then runs on `device`, bit-exact."""
    ids = rows["photo_id"].to_pylist()
    tabular = (
        np.column_stack([rows[c].to_numpy(zero_copy_only=False).astype(np.float32) for c in TABULAR])
        if ids
        else np.zeros((0, len(TABULAR)), np.float32)
    )
    titles = [t or "" for t in rows["title"].to_pylist()] if "title" in rows.column_names else [""] * len(ids)
    columns: dict[str, list] = {k: [] for k in ("photo_id", "view", "image", "features", "mask", "title")}
    views_u8 = [np.zeros((len(ids), 3, image_size, image_size), np.uint8) for _ in range(views)]
    for idx, batch, errors in image_batches(images, image_size, batch_size, device, workers):
        batch_ids = [ids[i] for i in idx.tolist()]
        if bad := [f"photo {pid}: {e}" for pid, e in zip(batch_ids, errors) if e]:
            raise ValueError(f"unreadable training images (the embeddings should have quarantined them): {bad[:3]}")
        on_device = to_device(batch, device)
        for view in range(views):
            views_u8[view][idx.numpy()] = augment(on_device, draw_params(seed, batch_ids, view)).cpu().numpy()
    for view in range(views):
        for i, pid in enumerate(ids):
            rng = rng_for(seed, pid, view)
            values, mask = drop_cells(tabular[i], rng, p_drop_cell)
            columns["photo_id"].append(pid)
            columns["view"].append(view)
            columns["image"].append(views_u8[view][i].tobytes())
            columns["features"].append(values)
            columns["mask"].append(mask)
            columns["title"].append(perturb_title(titles[i], rng, p_drop_word, p_swap_word))
    order = np.lexsort((np.array(columns["view"]), np.array(columns["photo_id"]))) if ids else np.array([], int)
    src = np.tile(np.arange(len(ids)), views)[order] if ids else np.array([], int)
    schema = sample_schema(image_size, image_vectors.shape[1], title_vectors.shape[1])
    return pa.table(
        [
            pa.array(np.array(columns["photo_id"], np.int64)[order]),
            pa.array(np.array(columns["view"], np.int16)[order]),
            rows["posted_at"].take(pa.array(src, pa.int64())),
            pa.array(rows["popularity_score"].to_numpy(zero_copy_only=False).astype(np.float32)[src]),
            pa.array([columns["image"][i] for i in order], schema.field("image").type),
            _fixed(image_vectors[src]),
            _fixed(title_vectors[src]),
            pa.array([columns["title"][i] for i in order], pa.string()),
            _fixed(np.array(columns["features"], np.float32).reshape(-1, len(TABULAR))[order]),
            _fixed(np.array(columns["mask"], np.float32).reshape(-1, len(TABULAR))[order]),
        ],
        schema=schema,
    )

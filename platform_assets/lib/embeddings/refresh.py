"""Bringing the embeddings up to date with the lake's photos: the encoder trained on a bounded
sample of the readable images, and image and title vectors recomputed only for photos whose content or model
changed (rows keyed on photo id, content hash and model version; see `incremental`)."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import torch

from platform_assets.lib.content_hash import content_hash
from platform_assets.lib.embeddings.image_encoder import load_encoder, train_simclr, weights_version
from platform_assets.lib.embeddings.incremental import PreviousDay, embedding_schema, embedding_table, merged_slices
from platform_assets.lib.embeddings.titles import TITLE_DIM, embed_titles
from platform_assets.lib.images.batches import stored_embedding_batches, stored_image_batches
from platform_assets.lib.lake_layout import EMBEDDINGS_ROW_GROUP_ROWS
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.torch_device import inference_mode


@dataclass(frozen=True)
class TrainedEncoder:
    version: str
    weights: bytes  # torch.save of the state_dict
    metrics: dict


def encoder_sample(photos: pa.Table, sample_bytes: int, size: int, seed: int) -> pa.Table:
    """The photos the encoder trains on: every one while their decoded pixels fit in
    `sample_bytes`; past that, those with the smallest hash of (seed, photo id), a sample that
    is the same on every run and changes little as the lake grows. In the photos' own order,
    so a lake that fits trains exactly as it would on all of it."""
    limit = sample_bytes // (3 * size * size)
    if limit < 2:
        raise ValueError(
            f"sample_mb={sample_bytes / 2**20:g} holds {limit} image(s) of {size} px: the encoder needs at "
            f"least 2; set image_encoder's sample_mb to {-(-2 * 3 * size * size // 2**20)} or more"
        )
    if photos.num_rows <= limit:
        return photos
    rank = [hashlib.blake2b(f"{seed}:{pid}".encode(), digest_size=8).digest() for pid in photos["photo_id"].to_pylist()]
    return photos.take(sorted(sorted(range(photos.num_rows), key=rank.__getitem__)[:limit]))


def train_encoder(
    store: LakeStore,
    photos: pa.Table,
    *,
    size: int,
    sample_bytes: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    device: torch.device,
    arch: str,
) -> TrainedEncoder:
    """SimCLR at `size` px on a bounded sample of the photos (`photo_id`, `image_key`), read and
    decoded a batch at a time into one preallocated tensor; broken images are left out (the
    embeddings quarantine them)."""
    sample = encoder_sample(photos, sample_bytes, size, seed)
    images, kept = torch.empty((sample.num_rows, 3, size, size), dtype=torch.uint8), 0
    keys = sample["image_key"].to_pylist()
    for batch in stored_image_batches(store, keys, size, 256, torch.device("cpu"), None):
        good = [i for i, error in enumerate(batch.errors) if not error]
        images[kept : kept + len(good)] = batch.images[good]
        kept += len(good)
    started = time.perf_counter()
    result = train_simclr(images[:kept], epochs, batch_size, learning_rate, seed, device, arch)
    metrics = {
        "source": "simclr",
        "image_size": size,
        "images": kept,
        "photos": photos.num_rows,
        "sample_mb": round(sample_bytes / 2**20, 1),
        "epochs": epochs,
        "seconds": round(time.perf_counter() - started, 1),
        "first_loss": round(result.losses[0], 4),
        "last_loss": round(result.losses[-1], 4),
    }
    return encoded_weights(result.state_dict, metrics)


def encoded_weights(state: dict, metrics: dict) -> TrainedEncoder:
    buf = io.BytesIO()
    torch.save(state, buf)
    return TrainedEncoder(weights_version(state), buf.getvalue(), metrics)


TITLE_SLICE_ROWS = 8192  # titles embedded per call (the encoder sorts a call's titles by length)


@dataclass
class Refresh:
    """A day's table rewritten: what was computed, reused and could not be."""

    rows: int
    bytes: int
    embedded: int
    reused: int
    seconds: float
    quarantine: pa.Table = field(default_factory=lambda: pa.table({}))
    decoder: str = ""  # images: nvjpeg or pillow


def _rewrite(
    store: LakeStore, key: str, previous: PreviousDay, dim: int, slices: Iterator[tuple[pa.Table, pa.Table]]
) -> Refresh:
    """Write the day's new table at `key` from `slices` (see `merged_slices`), a row group at a
    time; what was embedded and reused, and the seconds it took, writing included."""
    counts = {"reused": 0, "embedded": 0}
    started = time.perf_counter()
    schema = embedding_schema(dim)
    written = store.write_parquet_batches(
        key, schema, merged_slices(previous, slices, schema, counts), EMBEDDINGS_ROW_GROUP_ROWS
    )
    seconds = time.perf_counter() - started
    return Refresh(written.rows, written.bytes, counts["embedded"], counts["reused"], seconds)


def refresh_image_embeddings(
    store: LakeStore,
    photos: pa.Table,
    key: str,
    *,
    weights: bytes,
    version: str,
    arch: str,
    size: int,
    device: torch.device,
    batch_size: int,
    workers: int | None,
) -> Refresh:
    """Rewrite the day's image embeddings at `key` for its photos (`photo_id`, `image_key`),
    embedding those whose image or encoder changed: JPEGs are read, hashed and decoded a batch
    at a time (a changed image is known by the hash of the bytes read for it, so each is read
    once), and the table is written as the batches go. Unreadable images go to the quarantine
    with their key and reason. Memory: a batch of JPEGs and a row group, not the day."""
    photos = photos.sort_by("photo_id")
    ids, keys = photos["photo_id"], photos["image_key"].to_pylist()
    previous = PreviousDay(store, key, version)
    model = load_encoder(torch.load(io.BytesIO(weights), weights_only=True), device, arch)
    errors: dict[int, str] = {}
    decoder, batches = stored_embedding_batches(
        store, keys, size, batch_size, device, workers, [previous.known.get(i) for i in ids.to_pylist()]
    )

    def slices() -> Iterator[tuple[pa.Table, pa.Table]]:
        with inference_mode(device):
            for batch, images in batches:
                current = pa.table(
                    {
                        "photo_id": ids.slice(batch.start, len(batch.hashes)),
                        "content_hash": pa.array(batch.hashes, pa.string()),
                    }
                )
                out = model(images).float().cpu().numpy() if len(batch.indices) else np.zeros((0, model.dim))
                good = [k for k, error in enumerate(batch.errors) if not error]
                rows = pa.array([batch.indices[k].item() - batch.start for k in good], pa.int64())
                for k, error in enumerate(batch.errors):
                    if error:
                        errors[batch.indices[k].item()] = error
                yield (
                    current,
                    embedding_table(
                        current["photo_id"].take(rows), current["content_hash"].take(rows), version, out[good]
                    ),
                )

    result = _rewrite(store, key, previous, model.dim, slices())
    quarantine = pa.table(
        {
            "photo_id": pa.array([ids[r].as_py() for r in errors], pa.int64()),
            "image_key": pa.array([keys[r] for r in errors], pa.string()),
            "reason": pa.array(list(errors.values()), pa.string()),
        }
    )
    return replace(result, quarantine=quarantine, decoder=decoder)


def refresh_title_embeddings(
    store: LakeStore, photos: pa.Table, key: str, version: str, device: torch.device, batch_size: int
) -> Refresh:
    """Rewrite the day's title embeddings at `key` for its photos (`photo_id`, `title`; a
    missing title is the empty one), embedding those whose title changed, `TITLE_SLICE_ROWS`
    photos at a time."""
    photos = photos.sort_by("photo_id")
    previous = PreviousDay(store, key, version)

    def slices() -> Iterator[tuple[pa.Table, pa.Table]]:
        for lo in range(0, photos.num_rows, TITLE_SLICE_ROWS):
            part = photos.slice(lo, TITLE_SLICE_ROWS)
            titles = [t or "" for t in part["title"].to_pylist()]
            hashes = [content_hash(t.encode()) for t in titles]
            todo = [
                k for k, (i, h) in enumerate(zip(part["photo_id"].to_pylist(), hashes)) if previous.known.get(i) != h
            ]
            current = pa.table({"photo_id": part["photo_id"], "content_hash": pa.array(hashes, pa.string())})
            rows = pa.array(todo, pa.int64())
            vectors = (
                embed_titles([titles[k] for k in todo], device, batch_size)
                if todo
                else np.zeros((0, TITLE_DIM), np.float32)
            )
            yield (
                current,
                embedding_table(current["photo_id"].take(rows), current["content_hash"].take(rows), version, vectors),
            )

    return _rewrite(store, key, previous, TITLE_DIM, slices())

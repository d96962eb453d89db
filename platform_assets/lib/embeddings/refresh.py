"""Bringing the embeddings up to date with the lake's photos: the encoder trained on a bounded
sample of the readable images, and image and title vectors recomputed only for photos whose content or model
changed (rows keyed on photo id, content hash and model version; see `incremental`)."""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from platform_assets.lib.embeddings.device import inference_mode
from platform_assets.lib.embeddings.image_encoder import load_encoder, train_simclr, weights_version
from platform_assets.lib.embeddings.images import stored_embedding_batches, stored_image_batches
from platform_assets.lib.embeddings.incremental import content_hash, embedding_table, split_todo
from platform_assets.lib.embeddings.titles import TITLE_DIM, embed_titles
from platform_assets.lib.lake_store import LakeStore


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


@dataclass
class Refresh:
    """The whole up-to-date table, what was computed and reused, and what could not be."""

    table: pa.Table
    embedded: int
    reused: int
    seconds: float
    quarantine: pa.Table = field(default_factory=lambda: pa.table({}))
    decoder: str = ""  # images: nvjpeg or pillow

    @property
    def per_second(self) -> float:
        return round(self.embedded / self.seconds, 1) if self.embedded and self.seconds else 0.0


def _merge(keep: pa.Table | None, new: pa.Table) -> pa.Table:
    return (pa.concat_tables([keep, new]) if keep is not None else new).sort_by("photo_id")


def refresh_image_embeddings(
    store: LakeStore,
    photos: pa.Table,
    previous: pa.Table | None,
    weights: bytes,
    version: str,
    arch: str,
    size: int,
    device: torch.device,
    batch_size: int,
    workers: int | None,
) -> Refresh:
    """Embed the photos (`photo_id`, `image_key`) whose image or encoder changed, reading,
    hashing and decoding their JPEGs a batch at a time (a changed image is known by the hash of
    the bytes read for it, so each is read once); unreadable images go to the quarantine with
    their key and reason. Memory: one batch of JPEGs and the day's vectors."""
    ids, keys = photos["photo_id"].to_pylist(), photos["image_key"].to_pylist()
    known_hash = {}
    if previous is not None:
        valid = previous.filter(pc.equal(previous["model_version"], version))
        known_hash = dict(zip(valid["photo_id"].to_pylist(), valid["content_hash"].to_pylist()))
    model = load_encoder(torch.load(io.BytesIO(weights), weights_only=True), device, arch)
    hashes: list[str] = []
    done, vectors, errors = [], [], {}
    started = time.perf_counter()
    decoder, batches = stored_embedding_batches(
        store, keys, size, batch_size, device, workers, [known_hash.get(i) for i in ids]
    )
    with inference_mode(device):
        for batch, images in batches:
            hashes += batch.hashes
            if not len(batch.indices):
                continue
            out = model(images).float().cpu().numpy()
            for row, vector, error in zip(batch.indices.tolist(), out, batch.errors):
                if error:
                    errors[row] = error
                else:
                    done.append(row)
                    vectors.append(vector)
    seconds = time.perf_counter() - started
    current = pa.table({"photo_id": photos["photo_id"], "content_hash": pa.array(hashes, pa.string())})
    keep, _ = split_todo(current, previous, version)
    rows = pa.array(done, pa.int64())  # typed: an empty take (nothing changed) needs its type
    new = embedding_table(
        current["photo_id"].take(rows),
        current["content_hash"].take(rows),
        version,
        np.stack(vectors) if vectors else np.zeros((0, model.dim), np.float32),
    )
    quarantine = pa.table(
        {
            "photo_id": pa.array([ids[r] for r in errors], pa.int64()),
            "image_key": pa.array([keys[r] for r in errors], pa.string()),
            "reason": pa.array(list(errors.values()), pa.string()),
        }
    )
    reused = keep.num_rows if keep is not None else 0
    return Refresh(_merge(keep, new), new.num_rows, reused, seconds, quarantine, decoder)


def refresh_title_embeddings(
    photos: pa.Table, previous: pa.Table | None, version: str, device: torch.device, batch_size: int
) -> Refresh:
    """Embed the titles (`photo_id`, `title`; a missing title is the empty one) that changed."""
    titles = [t or "" for t in photos["title"].to_pylist()]
    current = pa.table(
        {"photo_id": photos["photo_id"], "content_hash": pa.array([content_hash(t.encode()) for t in titles])}
    )
    keep, todo = split_todo(current, previous, version)
    by_id = dict(zip(photos["photo_id"].to_pylist(), titles))
    started = time.perf_counter()
    vectors = (
        embed_titles([by_id[i] for i in todo["photo_id"].to_pylist()], device, batch_size)
        if todo.num_rows
        else np.zeros((0, TITLE_DIM), np.float32)
    )
    seconds = time.perf_counter() - started
    new = embedding_table(todo["photo_id"], todo["content_hash"], version, vectors)
    return Refresh(_merge(keep, new), todo.num_rows, keep.num_rows if keep is not None else 0, seconds)

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
import torch

from platform_assets.lib.embeddings.device import inference_mode
from platform_assets.lib.embeddings.image_encoder import load_encoder, train_simclr, weights_version
from platform_assets.lib.embeddings.images import embedding_batches, stored_image_batches
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
    for _, batch, errors in stored_image_batches(store, keys, size, 256, torch.device("cpu"), None):
        good = [i for i, error in enumerate(errors) if not error]
        images[kept : kept + len(good)] = batch[good]
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
    photos: pa.Table,
    blobs: list[bytes],
    previous: pa.Table | None,
    weights: bytes,
    version: str,
    arch: str,
    size: int,
    device: torch.device,
    batch_size: int,
    workers: int | None,
) -> Refresh:
    """Embed the photos (`photo_id`, `image_key`; `blobs` their image bytes, in order) whose
    image or encoder changed; unreadable images go to the quarantine with their key and reason."""
    current = pa.table({"photo_id": photos["photo_id"], "content_hash": pa.array([content_hash(b) for b in blobs])})
    keep, todo = split_todo(current, previous, version)
    row_of = {pid: i for i, pid in enumerate(photos["photo_id"].to_pylist())}
    todo_rows = [row_of[pid] for pid in todo["photo_id"].to_pylist()]
    model = load_encoder(torch.load(io.BytesIO(weights), weights_only=True), device, arch)
    vectors, errors = np.zeros((len(todo_rows), model.dim), np.float32), {}
    started = time.perf_counter()
    decoder, batches = embedding_batches([blobs[r] for r in todo_rows], size, batch_size, device, workers)
    with inference_mode(device):
        for idx, batch, err in batches:
            vectors[idx] = model(batch).float().cpu().numpy()
            errors.update({i: e for i, e in zip(idx, err) if e})
    seconds = time.perf_counter() - started
    ok = pa.array([i not in errors for i in range(len(todo_rows))], pa.bool_())
    new = embedding_table(
        todo["photo_id"].filter(ok), todo["content_hash"].filter(ok), version, vectors[ok.to_numpy(False)]
    )
    bad = [todo_rows[i] for i in errors]
    quarantine = pa.table(
        {
            "photo_id": pa.array([photos["photo_id"][r].as_py() for r in bad], pa.int64()),
            "image_key": pa.array([photos["image_key"][r].as_py() for r in bad], pa.string()),
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

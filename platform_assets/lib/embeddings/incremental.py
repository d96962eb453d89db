"""Recompute only what changed: rows are keyed on (id, content hash, model version)."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def split_todo(current: pa.Table, previous: pa.Table | None, version: str) -> tuple[pa.Table, pa.Table]:
    """(rows of `previous` still valid, rows of `current` to compute). `current` holds id and
    content_hash; a previous row is valid when id, content hash and model version all match."""
    if previous is None or previous.num_rows == 0:
        return previous.slice(0, 0) if previous is not None else None, current
    prev = previous.filter(pc.equal(previous["model_version"], version))
    key = lambda t: pc.binary_join_element_wise(pc.cast(t["photo_id"], pa.string()), t["content_hash"], ":")  # noqa: E731
    keep = prev.filter(pc.is_in(key(prev), key(current)))
    todo = current.filter(pc.invert(pc.is_in(key(current), key(keep))))
    return keep, todo


def embedding_table(ids: pa.Array, hashes: pa.Array, version: str, vectors: np.ndarray) -> pa.Table:
    dim = vectors.shape[1]
    flat = pa.array(vectors.astype(np.float32).reshape(-1), pa.float32())
    return pa.table(
        {
            "photo_id": ids,
            "content_hash": hashes,
            "model_version": pa.array([version] * len(ids), pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )

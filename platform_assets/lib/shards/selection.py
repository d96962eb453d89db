"""Which training-set rows of a day become samples, with their image and title vectors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Selection:
    rows: pa.Table  # training-set rows joined with the photo's title and image key, by photo_id
    image_vectors: np.ndarray  # (rows, image dim), in the order of `rows`
    title_vectors: np.ndarray  # (rows, title dim)
    without_embeddings: int  # rows left out: the photo's image was quarantined (or its title missing)


def _vectors(table: pa.Table, ids: pa.Array) -> np.ndarray:
    """Rows of an embeddings table in the order of `ids` (all present)."""
    if not len(ids):
        return np.zeros((0, 1), np.float32)
    taken = table.take(pc.index_in(ids, table["photo_id"])).combine_chunks()
    return taken["embedding"].chunk(0).values.to_numpy().reshape(len(ids), -1)


def select_rows(training_rows: pa.Table, photos: pa.Table, image_emb: pa.Table, title_emb: pa.Table) -> Selection:
    """Every row whose photo has both embeddings, ordered by photo_id so that the same inputs
    always give the same shards; the rest are counted, not failed."""
    rows = training_rows.join(photos.select(["photo_id", "title", "image_key"]), "photo_id").sort_by("photo_id")
    usable = pc.and_(
        pc.is_in(rows["photo_id"], image_emb["photo_id"]), pc.is_in(rows["photo_id"], title_emb["photo_id"])
    )
    kept = rows.filter(usable) if rows.num_rows else rows
    return Selection(
        kept,
        _vectors(image_emb, kept["photo_id"]),
        _vectors(title_emb, kept["photo_id"]),
        rows.num_rows - kept.num_rows,
    )

"""Which training-set rows of a day become samples, with their image and title vectors."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.lib.shards.vectors import VectorCursor


@dataclass(frozen=True)
class Selection:
    rows: pa.Table  # training-set rows joined with the photo's title and image key, sorted by photo_id
    image_vectors: VectorCursor  # the day's image embeddings, read as the shards are built
    title_vectors: VectorCursor
    without_embeddings: int  # rows left out: the photo's image was quarantined (or its title missing)


def select_rows(
    training_rows: pa.Table, photos: pa.Table, image_vectors: VectorCursor, title_vectors: VectorCursor
) -> Selection:
    """Every row whose photo has both embeddings, ordered by photo_id so that the same inputs
    always give the same shards; the rest are counted, not failed."""
    rows = training_rows.join(photos.select(["photo_id", "title", "image_key"]), "photo_id").sort_by("photo_id")
    usable = pc.and_(pc.is_in(rows["photo_id"], image_vectors.ids), pc.is_in(rows["photo_id"], title_vectors.ids))
    kept = rows.filter(usable) if rows.num_rows else rows
    return Selection(kept, image_vectors, title_vectors, rows.num_rows - kept.num_rows)

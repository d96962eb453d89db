"""One day's embeddings read forward in photo-id order, a row group at a time.

A day's shards hold every sample's image and title vectors, but the samples are in photo-id
order and so are the day's embeddings tables: a shard's vectors are the next rows of each
table. Reading them as the shards are built holds a row group of vectors, not the day's
(a gigabyte at 100,000 photos with their two views' copies).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.lib.lake_layout import EMBEDDINGS_ROW_GROUP_ROWS
from platform_assets.lib.lake_store import LakeStore

COLUMNS = ["photo_id", "embedding"]


class VectorCursor:
    """The vectors of an embeddings table sorted by photo id. `ids` are all its photo ids
    (read up front: 8 bytes a photo); `take` returns the vectors of increasing ids, each call
    starting at or after the previous call's last id (consecutive shards may share a photo)."""

    def __init__(self, ids: pa.Array, dim: int, batches: Iterable[pa.RecordBatch]) -> None:
        self.ids, self.dim = ids, dim
        self._batches: Iterator[pa.RecordBatch] = iter(batches)
        self._ids = np.zeros(0, np.int64)
        self._vectors = np.zeros((0, dim), np.float32)

    @classmethod
    def of_table(cls, table: pa.Table) -> VectorCursor:
        table = table.select(COLUMNS).sort_by("photo_id")
        return cls(
            table["photo_id"].combine_chunks(), table.schema.field("embedding").type.list_size, table.to_batches()
        )

    @classmethod
    def of_arrays(cls, ids: np.ndarray, vectors: np.ndarray) -> VectorCursor:
        """Vectors held in memory (`vectors[i]` is photo `ids[i]`'s): small days, tests."""
        flat = pa.array(vectors.astype(np.float32, copy=False).reshape(-1), pa.float32())
        embedding = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        return cls.of_table(pa.table({"photo_id": pa.array(ids, pa.int64()), "embedding": embedding}))

    @classmethod
    def in_lake(cls, store: LakeStore, key: str) -> VectorCursor:
        """The table at `key`, streamed. Tables this code writes are in id order; one that is
        not (written by other code) is read whole and sorted rather than failed."""
        ids = store.read_parquet(key, columns=["photo_id"])["photo_id"].combine_chunks()
        if len(ids) > 1 and not pc.all(pc.greater(ids[1:], ids[:-1])).as_py():
            return cls.of_table(store.read_parquet(key, columns=COLUMNS))
        dim = store.parquet_schema(key).field("embedding").type.list_size
        return cls(ids, dim, store.iter_parquet([key], COLUMNS, EMBEDDINGS_ROW_GROUP_ROWS))

    def take(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids), dim) float32 vectors of `ids` (increasing, all in the table)."""
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        while not len(self._ids) or self._ids[-1] < ids[-1]:
            batch = next(self._batches, None)
            if batch is None:
                break
            batch_ids = batch["photo_id"].to_numpy()
            keep = batch_ids >= ids[0]
            vectors = batch["embedding"].flatten().to_numpy().reshape(-1, self.dim)
            self._ids = np.concatenate([self._ids, batch_ids[keep]])
            self._vectors = np.concatenate([self._vectors, vectors[keep]])
        at = np.minimum(np.searchsorted(self._ids, ids), max(len(self._ids) - 1, 0))
        if not len(self._ids) or (self._ids[at] != ids).any():
            missing = ids[:1] if not len(self._ids) else ids[self._ids[at] != ids][:3]
            raise ValueError(f"embeddings table has no vector for photo ids {missing.tolist()} (read in id order)")
        taken = self._vectors[at]
        self._ids, self._vectors = self._ids[at[-1] :], self._vectors[at[-1] :]  # the next call may start at ids[-1]
        return taken

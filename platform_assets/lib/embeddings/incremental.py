"""Recompute only what changed: rows are keyed on (id, content hash, model version), and a
day's table is rewritten a slice of photos at a time, merging the rows still valid from its
previous version with the ones just computed, so memory holds a slice, not the day."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.lib.heap import release_freed_memory
from platform_assets.lib.lake_store import LakeStore

PREVIOUS_BATCH_ROWS = 4096  # rows of the previous table read at a time
KEY_COLUMNS = ["photo_id", "content_hash", "model_version"]


def embedding_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("photo_id", pa.int64()),
            ("content_hash", pa.string()),
            ("model_version", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ]
    )


def embedding_table(ids: pa.Array, hashes: pa.Array, version: str, vectors: np.ndarray) -> pa.Table:
    dim = vectors.shape[1]
    flat = pa.array(vectors.astype(np.float32, copy=False).reshape(-1), pa.float32())
    return pa.table(
        [ids, hashes, pa.array([version] * len(ids), pa.string()), pa.FixedSizeListArray.from_arrays(flat, dim)],
        schema=embedding_schema(dim),
    )


def _row_keys(table: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(pc.cast(table["photo_id"], pa.string()), table["content_hash"], ":")


class PreviousDay:
    """A day's table as last written (sorted by photo id), read in order a slice at a time.
    `known` maps each photo id to the content hash its row was computed from, for the rows of
    the current model version: a photo whose hash still matches is reused, not recomputed."""

    def __init__(self, store: LakeStore, key: str, version: str) -> None:
        self.version = version
        self.known: dict[int, str] = {}
        self._batches: Iterator[pa.RecordBatch] = iter(())
        self._pending: pa.Table | None = None
        if not store.exists(key):
            return
        keys = store.read_parquet(key, columns=KEY_COLUMNS)
        ids = keys["photo_id"]
        if len(ids) > 1 and not pc.all(pc.greater(ids[1:], ids[:-1])).as_py():
            return  # not in id order (not written by this module): nothing can be merged, recompute the day
        valid = keys.filter(pc.equal(keys["model_version"], version))
        self.known = dict(zip(valid["photo_id"].to_pylist(), valid["content_hash"].to_pylist()))
        self._batches = store.iter_parquet([key], None, PREVIOUS_BATCH_ROWS)

    def kept(self, current: pa.Table) -> pa.Table | None:
        """The previous rows still valid for `current` (photo id and content hash, the next
        photos in id order): same model version, id and hash."""
        upto, parts = current["photo_id"][-1], []
        while True:
            if self._pending is None:
                batch = next(self._batches, None)
                if batch is None:
                    break
                self._pending = pa.Table.from_batches([batch])
            n = pc.sum(pc.less_equal(self._pending["photo_id"], upto)).as_py() or 0
            parts.append(self._pending.slice(0, n))
            if n < self._pending.num_rows:
                self._pending = self._pending.slice(n)
                break
            self._pending = None
        if not parts:
            return None
        rows = pa.concat_tables(parts)
        return rows.filter(
            pc.and_(pc.equal(rows["model_version"], self.version), pc.is_in(_row_keys(rows), _row_keys(current)))
        )


def merged_slices(
    previous: PreviousDay, slices: Iterable[tuple[pa.Table, pa.Table]], schema: pa.Schema, counts: dict[str, int]
) -> Iterator[pa.Table]:
    """The day's new table a slice at a time, in photo id order: for each `(current, new)` (the
    next photos' ids and content hashes, in id order, and the rows just computed for some of
    them), the still-valid previous rows of those photos merged with the new ones. `counts`
    gets the rows "reused" and "embedded" as they go."""
    for current, new in slices:
        if not current.num_rows:
            continue
        keep = previous.kept(current)
        keep = keep.cast(schema) if keep is not None and keep.num_rows else schema.empty_table()
        counts["reused"] += keep.num_rows
        counts["embedded"] += new.num_rows
        yield pa.concat_tables([keep, new]).sort_by("photo_id")
        release_freed_memory()  # the slice's images and activations: else the heap grows with the day

"""Write one day's samples as fixed-size Parquet shards plus an index.

Parquet because every standard tool reads it (pyarrow, Polars, DuckDB, pandas, Spark), it
stores fixed-size vectors and raw pixels compactly, its row groups let a reader seek to a
sample offset, and pyarrow writes identical bytes for identical tables. Samples are ordered
by (photo_id, view) and split by a target byte size, so the same inputs, code and seed give
byte-identical shards and DVC deduplicates unchanged ones.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.shards.vectors import VectorCursor

ROW_GROUP_ROWS = 1024


@dataclass(frozen=True)
class ShardInfo:
    name: str
    samples: int
    bytes: int
    sha256: str


def _encode(table: pa.Table, row_group_rows: int, compression: str) -> bytes:
    """Pixels and float vectors are unique per sample: dictionary encoding only costs time."""
    buf = io.BytesIO()
    pq.write_table(
        table,
        buf,
        compression=compression,
        use_dictionary=["title"],
        row_group_size=row_group_rows,
        write_statistics=False,
    )
    return buf.getvalue()


@dataclass(frozen=True)
class StreamedColumn:
    """A fixed-width binary column too large to hold for a whole day (pixels): it arrives in
    row order as uint8 arrays of `field.type.byte_width` columns, and is inserted at `position`."""

    field: pa.Field
    position: int
    chunks: Iterator[np.ndarray]


@dataclass(frozen=True)
class GatheredColumn:
    """A fixed-size float vector column built a shard at a time: row i of the samples holds
    the vector of `photo_ids[i // repeat]` (each photo's `repeat` views are adjacent), read
    forward from `vectors`, inserted at `position`."""

    field: pa.Field
    position: int
    photo_ids: np.ndarray
    vectors: VectorCursor
    repeat: int

    @property
    def byte_width(self) -> int:
        return 4 * self.vectors.dim

    def rows(self, start: int, stop: int) -> pa.FixedSizeListArray:
        """Rows `start` to `stop` of the column: called for consecutive ranges, in order."""
        first, end = start // self.repeat, -(-stop // self.repeat)  # the photos whose views these are
        photos = self.vectors.take(self.photo_ids[first:end] if stop > start else self.photo_ids[:0])
        values = photos[np.arange(start, stop) // self.repeat - first].astype(np.float32).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(values), self.vectors.dim)


def _gathered_in(part: pa.Table, start: int, gathered: list[GatheredColumn]) -> pa.Table:
    for column in sorted(gathered, key=lambda c: c.position):
        part = part.add_column(column.position, column.field, column.rows(start, start + part.num_rows))
    return part


def _streamed_tables(
    table: pa.Table, rows_per_shard: int, count: int, streamed: StreamedColumn | None
) -> Iterator[pa.Table]:
    """Each shard's rows, with the streamed column's values joined in as they arrive."""
    if streamed is None:
        for n in range(count):
            yield table.slice(n * rows_per_shard, rows_per_shard)
        return
    width = streamed.field.type.byte_width
    pending = np.zeros((0, width), np.uint8)
    for n in range(count):
        part = table.slice(n * rows_per_shard, rows_per_shard)
        parts, have = [pending], len(pending)
        while have < part.num_rows:
            chunk = next(streamed.chunks, None)
            if chunk is None:
                raise ValueError(f"column {streamed.field.name} ended after {have} of {part.num_rows} rows")
            parts.append(chunk)
            have += len(chunk)
        block = np.concatenate(parts) if len(parts) > 1 else pending
        values, pending = np.ascontiguousarray(block[: part.num_rows]), block[part.num_rows :]
        column = pa.FixedSizeBinaryArray.from_buffers(streamed.field.type, part.num_rows, [None, pa.py_buffer(values)])
        yield part.add_column(streamed.position, streamed.field, column)
    if len(pending) or next(streamed.chunks, None) is not None:
        raise ValueError(f"column {streamed.field.name} has more rows than the table's {table.num_rows}")


def write_shards(
    store: LakeStore,
    prefix: str,
    samples: pa.Table,
    target_bytes: int,
    compression: str = "none",
    threads: int = 2,
    streamed: StreamedColumn | None = None,
    gathered: list[GatheredColumn] = (),
) -> list[ShardInfo]:
    """Split `samples` (already in their final order) into shards of about `target_bytes`
    (the last may be smaller), encode and write them atomically, `threads` at a time and each
    as soon as its rows are there, then the index; returns the index. With `streamed`, the
    table lacks that column and its values arrive in order; with `gathered`, those columns are
    built for a shard's rows from one vector per photo: a shard is built only when written, so
    memory holds about `threads` + 1 shards, not the day's samples. Shard boundaries come from
    the whole day's size (the added columns' widths are known), so the bytes are the same."""
    width = (streamed.field.type.byte_width if streamed else 0) + sum(c.byte_width for c in gathered)
    per_row = max(1, (samples.nbytes + width * samples.num_rows) // samples.num_rows) if samples.num_rows else 1
    rows_per_shard = max(1, target_bytes // per_row)
    row_group_rows = min(ROW_GROUP_ROWS, rows_per_shard)
    old = {e.key for e in store.list_files(prefix)}

    def one(n: int, part: pa.Table) -> ShardInfo:
        data = _encode(part, row_group_rows, compression)
        name = f"shard-{n:05d}.parquet"
        store.write_bytes(f"{prefix}/{name}", data)
        return ShardInfo(name, part.num_rows, len(data), hashlib.sha256(data).hexdigest())

    count = max(1, -(-samples.num_rows // rows_per_shard))
    shards, running = [], deque()
    with ThreadPoolExecutor(max_workers=threads) as pool:  # pyarrow encodes without the GIL
        for n, part in enumerate(_streamed_tables(samples, rows_per_shard, count, streamed)):
            if len(running) == threads:
                shards.append(running.popleft().result())
            running.append(pool.submit(one, n, _gathered_in(part, n * rows_per_shard, gathered)))
        shards += [f.result() for f in running]
    index = json.dumps({"shards": [asdict(s) for s in shards]}, indent=2, sort_keys=True).encode()
    store.write_bytes(f"{prefix}/index.json", index)
    keep = {f"{prefix}/{s.name}" for s in shards} | {f"{prefix}/index.json"}
    for stale in old - keep:  # a rebuild with fewer shards leaves none of the old ones behind
        store.delete(stale)
    return shards

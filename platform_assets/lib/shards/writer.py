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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from platform_assets.lib.lake_store import LakeStore

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


def write_shards(
    store: LakeStore, prefix: str, samples: pa.Table, target_bytes: int, compression: str = "none", threads: int = 2
) -> list[ShardInfo]:
    """Split `samples` (already in their final order) into shards of about `target_bytes`
    (the last may be smaller), encode and write them atomically in parallel, then the
    index; returns the index."""
    per_row = max(1, samples.nbytes // max(1, samples.num_rows)) if samples.num_rows else 1
    rows_per_shard = max(1, target_bytes // per_row)
    row_group_rows = min(ROW_GROUP_ROWS, rows_per_shard)
    old = {e.key for e in store.list_files(prefix)}

    def one(n: int) -> ShardInfo:
        part = samples.slice(n * rows_per_shard, rows_per_shard)
        data = _encode(part, row_group_rows, compression)
        name = f"shard-{n:05d}.parquet"
        store.write_bytes(f"{prefix}/{name}", data)
        return ShardInfo(name, part.num_rows, len(data), hashlib.sha256(data).hexdigest())

    count = max(1, -(-samples.num_rows // rows_per_shard))
    with ThreadPoolExecutor(max_workers=threads) as pool:  # pyarrow encodes without the GIL
        shards = list(pool.map(one, range(count)))
    index = json.dumps({"shards": [asdict(s) for s in shards]}, indent=2, sort_keys=True).encode()
    store.write_bytes(f"{prefix}/index.json", index)
    keep = {f"{prefix}/{s.name}" for s in shards} | {f"{prefix}/index.json"}
    for stale in old - keep:  # a rebuild with fewer shards leaves none of the old ones behind
        store.delete(stale)
    return shards

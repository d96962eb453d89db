"""A database table's snapshot written to the lake as one Parquet file in bounded memory: the
batches the database hands out are spilled to local files, then written in order with the column
types Polars' relaxed concatenation gives the whole table (a column null in the first batches and
text in a later one is text), so the bytes are those of the table read whole (in row groups of `TABLE_ROW_GROUP_ROWS`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pyarrow as pa

from platform_assets.lib.lake_layout import TABLE_ROW_GROUP_ROWS
from platform_assets.lib.lake_store import LakeStore, Written

SPILL_COMPRESSION = "lz4"  # local spill files: fast to write and read back


def relaxed_concat(frames: Iterable[pl.DataFrame]) -> pa.Table:
    """The batches as one Arrow table (the whole table in memory: for small tables and tests)."""
    frames = list(frames)
    return pl.concat(frames, how="vertical_relaxed").to_arrow() if frames else pa.table({})


def write_snapshot(store: LakeStore, key: str, frames: Iterable[pl.DataFrame]) -> Written:
    """Write the batches at `key`, holding one batch at a time (see the module's docstring)."""
    with tempfile.TemporaryDirectory(prefix="raw-snapshot-") as tmp:
        spilled, empties = [], []
        for i, frame in enumerate(frames):
            path = Path(tmp) / f"{i:06d}.parquet"
            frame.write_parquet(path, compression=SPILL_COMPRESSION)
            spilled.append(path)
            empties.append(frame.clear())
        if not spilled:
            return store.write_parquet_batches(key, pa.schema([]), [], TABLE_ROW_GROUP_ROWS)
        types = pl.concat(empties, how="vertical_relaxed")
        tables = (pl.concat([types, pl.read_parquet(p)], how="vertical_relaxed").to_arrow() for p in spilled)
        return store.write_parquet_batches(key, types.to_arrow().schema, tables, TABLE_ROW_GROUP_ROWS)

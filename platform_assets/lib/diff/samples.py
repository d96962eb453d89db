"""A partition's samples reduced to what a comparison needs, and two versions of a day compared.

A sample is keyed by (photo_id, view). A sample *changed* when its key is in both versions and
any other column differs: pixels and vectors are compared by a 64-bit BLAKE2b digest of each
row's bytes (held instead of the bytes, so memory is tens of bytes a sample however large the
images), scalars by their bits. A photo is added or removed when its id is in one version only,
and changed when any of its samples changed or its views differ (then `view` is among its columns).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from platform_assets.lib.diff.objects import ObjectSource, PartitionFiles
from platform_assets.lib.shards.writer import ROW_GROUP_ROWS

KEY = ("photo_id", "view")
VIEW_BITS = 16  # a sample's key packs the photo id above its int16 view


def _fixed_rows(column: pa.Array) -> np.ndarray | None:
    """A null-free fixed-width column as (rows, bytes) uint8, or None for variable width (strings)."""
    kind = column.type
    if pa.types.is_fixed_size_list(kind):
        values = column.flatten()  # this array's rows only
        item = values.type.byte_width
        data = np.frombuffer(values.buffers()[1], np.uint8)[values.offset * item : (values.offset + len(values)) * item]
        return data.reshape(len(column), kind.list_size * item)
    if pa.types.is_fixed_size_binary(kind) or pa.types.is_primitive(kind):
        width = kind.byte_width
        data = np.frombuffer(column.buffers()[1], np.uint8)
        return data[column.offset * width : (column.offset + len(column)) * width].reshape(len(column), width)
    return None


def _digest(value: bytes | np.ndarray) -> int:
    return int.from_bytes(hashlib.blake2b(value, digest_size=8).digest(), "little")


def row_digests(column: pa.Array) -> np.ndarray:
    """One uint64 per row: equal rows, equal digests."""
    rows = _fixed_rows(column)
    if rows is None:
        items: Iterable = ((b"\x00" + v.encode()) if v is not None else b"\x01" for v in column.to_pylist())
    else:
        items = iter(rows)  # each row of a C-contiguous array is a contiguous buffer
    return np.fromiter((_digest(v) for v in items), np.uint64, count=len(column))


def _numpy(column: pa.Array, dtype: type) -> np.ndarray:
    rows = _fixed_rows(column)
    assert rows is not None, column.type
    return rows.reshape(-1).view(dtype).reshape(len(column), -1)


@dataclass(frozen=True)
class PartitionSamples:
    """Every sample of one partition version: its key, a digest per column, and the label and
    tabular features (with their mask) kept as values for the shift figures."""

    photo_id: np.ndarray  # int64
    view: np.ndarray  # int16
    digests: dict[str, np.ndarray]  # column -> uint64 per sample
    label: np.ndarray  # float32
    features: np.ndarray  # (samples, features) float32, 0 where hidden
    mask: np.ndarray  # (samples, features) 1 = present

    @property
    def keys(self) -> np.ndarray:
        if len(self.photo_id) and (self.photo_id.min() < 0 or self.photo_id.max() >= 2 ** (63 - VIEW_BITS)):
            raise ValueError("photo ids outside 0..2^47 cannot be keyed with their view")
        return (self.photo_id << VIEW_BITS) | self.view.astype(np.int64)


VALUES = ("label", "features", "feature_mask")  # read as values, for the shift figures


def read_partition(source: ObjectSource, files: PartitionFiles, with_digests: bool = True) -> PartitionSamples:
    """Stream a partition's shards a row group at a time, keeping the shift columns and (with
    `with_digests`: a day to compare sample by sample) a digest of every column."""
    digests: list[dict[str, np.ndarray]] = []
    values: list[dict[str, np.ndarray]] = []
    for shard in files.shards:
        file = pq.ParquetFile(source.open(shard))
        names = None if with_digests else [*KEY, *VALUES]  # a whole added or removed day: no pixels read
        for batch in file.iter_batches(batch_size=ROW_GROUP_ROWS, columns=names):
            columns = {name: batch.column(name) for name in batch.schema.names}
            digests.append({name: row_digests(c) for name, c in columns.items() if with_digests and name not in KEY})
            values.append(
                {
                    "photo_id": _numpy(columns["photo_id"], np.int64)[:, 0],
                    "view": _numpy(columns["view"], np.int16)[:, 0],
                    "label": _numpy(columns["label"], np.float32)[:, 0],
                    "features": _numpy(columns["features"], np.float32),
                    "mask": _numpy(columns["feature_mask"], np.float32),
                }
            )
    if not values:
        raise ValueError(f"partition {files.md5} lists no shards")
    joined = {name: np.concatenate([v[name] for v in values]) for name in values[0]}
    return PartitionSamples(digests={name: np.concatenate([d[name] for d in digests]) for name in digests[0]}, **joined)


@dataclass(frozen=True)
class PhotoChange:
    photo_id: int
    columns: list[str]  # the columns that differ in any of its samples


@dataclass(frozen=True)
class SampleDiff:
    """Two versions of one day, sample by sample."""

    added_samples: int
    removed_samples: int
    changed_samples: int
    unchanged_samples: int
    added_photos: list[int]
    removed_photos: list[int]
    changed_photos: list[PhotoChange]
    changed_columns: dict[str, int]  # column -> samples in which it differs


def compare(a: PartitionSamples, b: PartitionSamples) -> SampleDiff:
    ka, kb = a.keys, b.keys
    both, ia, ib = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
    columns = sorted(set(a.digests) | set(b.digests))
    differs = {
        name: (a.digests[name][ia] != b.digests[name][ib])
        if name in a.digests and name in b.digests
        else np.ones(len(both), bool)
        for name in columns
    }
    changed = np.logical_or.reduce(list(differs.values())) if differs else np.zeros(len(both), bool)
    ids_a, ids_b = set(a.photo_id.tolist()), set(b.photo_id.tolist())
    per_photo: dict[int, set[str]] = {}
    for name, rows in differs.items():
        for photo in a.photo_id[ia[rows]].tolist():
            per_photo.setdefault(photo, set()).add(name)
    only_a, only_b = ~np.isin(ka, both), ~np.isin(kb, both)
    for photo in set(a.photo_id[only_a].tolist()) & ids_b | set(b.photo_id[only_b].tolist()) & ids_a:
        per_photo.setdefault(photo, set()).add("view")  # in both versions, with other views
    return SampleDiff(
        added_samples=int(only_b.sum()),
        removed_samples=int(only_a.sum()),
        changed_samples=int(changed.sum()),
        unchanged_samples=int(len(both) - changed.sum()),
        added_photos=sorted(ids_b - ids_a),
        removed_photos=sorted(ids_a - ids_b),
        changed_photos=[PhotoChange(p, sorted(per_photo[p])) for p in sorted(per_photo)],
        changed_columns={name: int(rows.sum()) for name, rows in differs.items() if rows.any()},
    )

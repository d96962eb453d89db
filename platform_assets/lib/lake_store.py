"""One lake, two backends: a local directory or an S3 prefix, behind pyarrow filesystems.

Every asset reads and writes through `LakeStore`, so the same code runs on the embedded
default and in production. Keys are validated so nothing escapes the lake root.
"""

from __future__ import annotations

import functools
import io
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from platform_assets.lib.batches import rebatched

F = TypeVar("F", bound=Callable)
_KEY_PART = re.compile(r"^[A-Za-z0-9_.=\-]+$")
TEMP_PREFIX = ".tmp-"  # a file being written; hidden from listings, renamed into place when whole


S3_ATTEMPTS = 5  # per request, with the AWS SDKs' standard backoff: throttling and dropped connections
S3_TIMEOUTS = {"connect_timeout": 5.0, "request_timeout": 60.0}


class LakeKeyError(ValueError):
    """A key that would escape the lake root or holds characters we never write."""


class LakeUnavailableError(OSError):
    """The lake could not be reached or written after the client's retries; the message names it."""


def validate_key(key: str) -> str:
    """Return `key` normalised, or raise if it could point outside the lake root."""
    parts = key.strip("/").split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") or not _KEY_PART.match(p) for p in parts):
        raise LakeKeyError(f"invalid lake key {key!r}: use relative 'a/b/c' keys of [A-Za-z0-9_.=-]")
    return "/".join(parts)


def _names_the_lake(action: str) -> Callable[[F], F]:
    """Turn a client's last error (after its own retries) into one that says which lake failed at what."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: LakeStore, key: str, *args, **kwargs):
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                return method(self, key, *args, **kwargs)
            except (FileNotFoundError, LakeKeyError, LakeUnavailableError):
                raise
            except (OSError, BotoCoreError, ClientError) as exc:
                where = self.root + (f" (S3 endpoint {self.s3_endpoint_url})" if self.s3_endpoint_url else "")
                retried = f" after {self.s3_attempts} attempts" if self.is_s3 else ""
                raise LakeUnavailableError(
                    f"lake {where} unavailable: {action} {key!r} failed{retried}: {exc}"
                ) from exc

        return wrapper  # type: ignore[return-value]

    return decorate


PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True, "store_schema": True}
ROW_GROUP_ROWS = 1 << 20  # pyarrow's default
# Streamed and filtered reads fetch a column chunk when it is decoded. pyarrow's default
# (`pre_buffer`) fetches ahead and caches whole row groups: reading a 10 M-event day 1 Mi rows
# at a time held 280 MB over the interpreter, against 80 MB at 128 Ki rows without it.
UNBUFFERED = ds.ParquetFragmentScanOptions(pre_buffer=False)
# A filtered read decodes one batch ahead, not pyarrow's 16: a filter that keeps a few rows of
# a large file holds about those rows, not 16 decoded batches.
FILTERED_SCAN = {"batch_readahead": 1, "fragment_readahead": 1, "fragment_scan_options": UNBUFFERED}


class Written(NamedTuple):
    """A Parquet file written from a stream: its rows, its size and its first five rows."""

    rows: int
    bytes: int
    head: pa.Table


def write_parquet_stream(
    path: str | os.PathLike, schema: pa.Schema, tables: Iterable[pa.Table], row_group_rows: int = ROW_GROUP_ROWS
) -> tuple[int, pa.Table]:
    """Tables arriving in order written as one local Parquet file, in row groups of
    `row_group_rows` whatever the tables' sizes: the bytes `LakeStore.write_parquet` writes for
    their concatenation, holding about one row group. Returns the rows and the first five."""
    rows = 0
    head = schema.empty_table()
    with pq.ParquetWriter(path, schema, **PARQUET_OPTIONS) as writer:
        for block in rebatched(tables, row_group_rows):
            head = head if head.num_rows >= 5 else pa.concat_tables([head, block.slice(0, 5 - head.num_rows)])
            rows += block.num_rows
            # one chunk per column: the writer's pages (and so its bytes) depend on how the input
            # is chunked, and a table written whole has one chunk
            writer.write_table(block.combine_chunks(), row_group_size=row_group_rows)
        if not rows:
            writer.write_table(schema.empty_table(), row_group_size=row_group_rows)
    return rows, head


def _temp_path(final: str) -> str:
    """A hidden, unique sibling of `final` to write into before the rename."""
    return f"{posixpath.dirname(final)}/{TEMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(final)}"


@lru_cache(maxsize=16)
def _s3_client(region: str | None, endpoint_url: str | None, attempts: int):
    """One boto3 client per endpoint for listings (with ETags), not one per listing."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": attempts, "mode": "standard"},
        connect_timeout=S3_TIMEOUTS["connect_timeout"],
        read_timeout=S3_TIMEOUTS["request_timeout"],
    )
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=config)


@lru_cache(maxsize=16)
def _s3_filesystem(region: str | None, endpoint_url: str | None, attempts: int) -> pafs.S3FileSystem:
    """One client per endpoint, not one per read: thousands of small objects share it."""
    kwargs: dict = {
        "region": region or "us-east-1",
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(attempts),
        **S3_TIMEOUTS,
    }
    if endpoint_url:
        endpoint = urlparse(endpoint_url)
        kwargs["endpoint_override"] = endpoint.netloc or endpoint.path
        kwargs["scheme"] = endpoint.scheme or "https"
    return pafs.S3FileSystem(**kwargs)


@dataclass(frozen=True)
class FileEntry:
    key: str
    size: int
    version: str  # S3: the ETag (same bytes, same tag); local: the modification time
    landed_ns: int = 0  # when the file landed (S3: LastModified, to the second; local: mtime)


@dataclass(frozen=True)
class LakeStore:
    """A lake rooted at a local directory or at `s3://bucket/prefix`."""

    root: str
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_attempts: int = S3_ATTEMPTS

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def _fs_and_base(self) -> tuple[pafs.FileSystem, str]:
        if self.is_s3:
            parsed = urlparse(self.root)
            if not parsed.netloc:
                raise ValueError(f"lake root {self.root!r} has no bucket: use s3://bucket/prefix")
            return _s3_filesystem(self.s3_region, self.s3_endpoint_url, self.s3_attempts), posixpath.join(
                parsed.netloc, parsed.path.strip("/")
            ).rstrip("/")
        if "://" in self.root:
            raise ValueError(f"lake root {self.root!r}: use a local directory or s3://bucket/prefix")
        return pafs.LocalFileSystem(), self.root.rstrip("/") or "/"

    def path(self, key: str) -> str:
        """The filesystem path (no scheme) of `key` inside the lake."""
        return f"{self._fs_and_base()[1]}/{validate_key(key)}"

    def uri(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{validate_key(key)}"

    @_names_the_lake("checking")
    def exists(self, key: str) -> bool:
        fs, _ = self._fs_and_base()
        return fs.get_file_info(self.path(key)).type == pafs.FileType.File

    @_names_the_lake("reading")
    def read_bytes(self, key: str) -> bytes:
        fs, _ = self._fs_and_base()
        with fs.open_input_stream(self.path(key), compression=None) as f:
            return f.read()

    @_names_the_lake("reading")
    def stream(self, key: str, sink: Callable[[bytes], object], chunk_bytes: int = 8 * 2**20) -> int:
        """Pass the object to `sink` a chunk at a time (large objects never held whole); returns its size."""
        fs, _ = self._fs_and_base()
        size = 0
        with fs.open_input_stream(self.path(key), compression=None) as f:
            while chunk := f.read(chunk_bytes):
                sink(chunk)
                size += len(chunk)
        return size

    def read_many(self, keys: list[str], threads: int = 8) -> list[bytes]:
        """Read many small objects concurrently; a missing key reads as b"" (callers report it)."""
        from concurrent.futures import ThreadPoolExecutor

        def one(key: str) -> bytes:
            try:
                return self.read_bytes(key)
            except FileNotFoundError:
                return b""

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(one, keys))

    @_names_the_lake("writing")
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write atomically: readers see the old object or the whole new one, never a part."""
        fs, _ = self._fs_and_base()
        final = self.path(key)
        if self.is_s3:  # an S3 PUT is atomic: the object appears only when complete
            with fs.open_output_stream(final, compression=None) as f:
                f.write(data)
            return
        fs.create_dir(posixpath.dirname(final), recursive=True)
        tmp = _temp_path(final)
        try:
            with fs.open_output_stream(tmp, compression=None) as f:
                f.write(data)
            fs.move(tmp, final)
        finally:
            if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                fs.delete_file(tmp)

    @_names_the_lake("writing")
    def put_file(self, key: str, local_path: str | os.PathLike) -> int:
        """Move a finished local file into the lake atomically (a multipart upload on S3); returns its size."""
        fs, _ = self._fs_and_base()
        final = self.path(key)
        size = os.path.getsize(local_path)
        if self.is_s3:
            pafs.copy_files(
                os.fspath(local_path), final, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs
            )
            return size
        os.makedirs(posixpath.dirname(final), exist_ok=True)
        tmp = _temp_path(final)
        try:
            shutil.move(local_path, tmp)  # a rename when on the same filesystem, else a copy
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return size

    def write_parquet_batches(
        self, key: str, schema: pa.Schema, tables: Iterable[pa.Table], row_group_rows: int = ROW_GROUP_ROWS
    ) -> Written:
        """Tables arriving in order written as one Parquet file (`write_parquet_stream` into a
        local temporary file, then `put_file`): the bytes `write_parquet` writes for their
        concatenation, holding a row group."""
        with tempfile.TemporaryDirectory(prefix="lake-write-") as tmp:
            local = os.path.join(tmp, "part.parquet")
            rows, head = write_parquet_stream(local, schema, tables, row_group_rows)
            return Written(rows, self.put_file(key, local), head)

    def write_parquet(self, key: str, table: pa.Table, row_group_rows: int | None = None) -> int:
        """Write `table` as one Parquet file with deterministic bytes; returns its size.
        `row_group_rows`: smaller row groups let a filtered read hold less (pyarrow's default: 1 Mi rows)."""
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=row_group_rows, **PARQUET_OPTIONS)
        data = buf.getvalue()
        self.write_bytes(key, data)
        return len(data)

    @_names_the_lake("reading")
    def read_parquet(self, key: str, where: pc.Expression | None = None, columns: list[str] | None = None) -> pa.Table:
        """The table, or only its rows matching `where` and its `columns`, read a row group at a
        time (row groups whose statistics rule them out are skipped). Filtered, it decodes one
        batch ahead, not pyarrow's default of 16: a filter that keeps a few rows of a large file
        holds about those rows, not 16 decoded batches."""
        fs, _ = self._fs_and_base()
        if where is None:
            return pq.read_table(self.path(key), filesystem=fs, columns=columns)
        dataset = ds.dataset(self.path(key), format="parquet", filesystem=fs)
        return dataset.to_table(filter=where, columns=columns, **FILTERED_SCAN)

    @_names_the_lake("reading")
    def parquet_schema(self, key: str) -> pa.Schema:
        """The Parquet file's Arrow schema, from its footer (no data is read)."""
        fs, _ = self._fs_and_base()
        return pq.read_schema(self.path(key), filesystem=fs)

    @_names_the_lake("reading")
    def parquet_rows(self, keys: list[str]) -> int:
        """The rows of these Parquet files, from their footers (no data is read)."""
        fs, _ = self._fs_and_base()
        return sum(pq.read_metadata(self.path(k), filesystem=fs).num_rows for k in keys)

    def iter_parquet(
        self, keys: list[str], columns: list[str] | None, batch_rows: int, where: pc.Expression | None = None
    ) -> Iterator[pa.RecordBatch]:
        """`columns` of these Parquet files (only the rows matching `where`), `batch_rows` at a
        time: memory holds a batch, not the files."""
        fs, _ = self._fs_and_base()
        if where is not None:
            dataset = ds.dataset([self.path(k) for k in keys], format="parquet", filesystem=fs)
            yield from dataset.to_batches(columns=columns, filter=where, batch_size=batch_rows, **FILTERED_SCAN)
            return
        for key in keys:
            with fs.open_input_file(self.path(key)) as source:
                yield from pq.ParquetFile(source, pre_buffer=False).iter_batches(batch_size=batch_rows, columns=columns)

    @_names_the_lake("reading")
    def column_max(self, keys: list[str], column: str) -> Any:
        """The greatest value of `column` in these Parquet files, from their footers' statistics
        (no data is read); None when they hold no rows."""
        fs, _ = self._fs_and_base()
        best = None
        for key in keys:
            meta = pq.read_metadata(self.path(key), filesystem=fs)
            index = meta.schema.to_arrow_schema().get_field_index(column)
            for group in range(meta.num_row_groups):
                stats = meta.row_group(group).column(index).statistics
                if stats is not None and stats.has_min_max:
                    best = stats.max if best is None else max(best, stats.max)
        return best

    def read_parquet_if_exists(self, key: str) -> pa.Table | None:
        return self.read_parquet(key) if self.exists(key) else None

    @_names_the_lake("listing")
    def list_files(self, prefix: str) -> list[FileEntry]:
        """Every file under `prefix`, sorted by key; temporary and hidden files left out."""
        if self.is_s3:
            return self._list_s3(prefix)
        fs, base = self._fs_and_base()
        root = f"{base}/{validate_key(prefix)}"
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        entries = [
            FileEntry(
                key=info.path[len(base) + 1 :],
                size=info.size,
                version=str(info.mtime_ns or 0),
                landed_ns=info.mtime_ns or 0,
            )
            for info in infos
            if info.type == pafs.FileType.File and not info.base_name.startswith(".")
        ]
        return sorted(entries, key=lambda e: e.key)

    def _list_s3(self, prefix: str) -> list[FileEntry]:
        """S3 listing with ETags (pyarrow's file info has none), a page of 1,000 keys per request."""
        parsed = urlparse(self.root)
        root = parsed.path.strip("/")
        full = f"{root}/{validate_key(prefix)}/" if root else f"{validate_key(prefix)}/"
        client = _s3_client(self.s3_region, self.s3_endpoint_url, self.s3_attempts)
        entries = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=full):
            for obj in page.get("Contents", []):
                key = obj["Key"][len(root) + 1 :] if root else obj["Key"]
                if not posixpath.basename(key).startswith("."):
                    entries.append(
                        FileEntry(
                            key=key,
                            size=obj["Size"],
                            version=obj["ETag"].strip('"'),
                            landed_ns=int(obj["LastModified"].timestamp() * 1e9),
                        )
                    )
        return sorted(entries, key=lambda e: e.key)

    @_names_the_lake("moving")
    def move(self, key: str, to: str) -> None:
        """Move an object within the lake on the server side (a rename, or an S3 copy then delete)."""
        fs, _ = self._fs_and_base()
        if not self.is_s3:
            os.makedirs(posixpath.dirname(self.path(to)), exist_ok=True)
        fs.move(self.path(key), self.path(to))

    @_names_the_lake("deleting")
    def delete(self, key: str) -> None:
        fs, _ = self._fs_and_base()
        if self.exists(key):
            fs.delete_file(self.path(key))

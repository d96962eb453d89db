"""Read gzipped JSONL log files into one Arrow table of raw lines, without parsing JSON.

Decompression runs in threads (zlib releases the GIL) and lines become Arrow strings by
pointing offsets into the decompressed buffer, so no Python object is made per line. A file
that is truncated, corrupt or not UTF-8 keeps every readable line; the rest is flagged with a
read error and ends in quarantine, never silently dropped.
"""

from __future__ import annotations

import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from platform_assets.lib.lake_store import LakeStore

LINES_SCHEMA = pa.schema(
    [
        ("file_index", pa.int32()),
        ("line_number", pa.int64()),
        ("raw", pa.large_string()),
        ("read_error", pa.string()),
    ]
)


def gunzip(data: bytes) -> tuple[bytes, str | None]:
    """Decompress every gzip member; on damage return what was readable and why it stopped."""
    if not data:
        return b"", "empty file: zero bytes is not a gzip stream"
    out: list[bytes] = []
    while data:
        stream = zlib.decompressobj(31)
        try:
            out.append(stream.decompress(data))
        except zlib.error as exc:
            return b"".join(out), f"corrupt gzip: {exc}"
        if not stream.eof:
            out.append(stream.flush())
            return b"".join(out), "truncated gzip"
        data = stream.unused_data
    return b"".join(out), None


def _lines(text: bytes, damage: str | None) -> tuple[pa.Array, pa.Array]:
    """Lines of `text` as Arrow strings (each keeping its newline) and a per-line read error."""
    buf = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10) + 1
    if len(text) and (not len(ends) or ends[-1] != len(text)):
        ends = np.append(ends, len(text))  # a last line without newline
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    n = len(ends)
    errors: dict[int, str] = {}
    if damage and n and not text.endswith(b"\n"):
        errors[n - 1] = damage  # the line the damage cut in half
    binary = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])
    try:
        raw = binary.cast(pa.large_string())  # validates UTF-8
    except pa.ArrowInvalid:  # rare slow path: flag the lines that are not UTF-8, keep them readable
        lines = []
        for i in range(n):
            line = text[offsets[i] : offsets[i + 1]]
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(line.decode("utf-8", errors="backslashreplace"))
                errors.setdefault(i, "invalid utf-8")
        raw = pa.array(lines, pa.large_string())
    if not errors:
        return raw, pa.nulls(n, pa.string())
    return raw, pa.array([errors.get(i) for i in range(n)], pa.string())


def _read_one(store: LakeStore, key: str) -> tuple[bytes, str | None]:
    return gunzip(store.read_bytes(key))


@dataclass(frozen=True)
class LogLines:
    """Raw lines of a set of files: `lines` refers to `files` by position (`file_index`)."""

    lines: pa.Table
    files: list[str]


def read_log_lines(store: LakeStore, keys: list[str], threads: int | None = None) -> LogLines:
    """All lines of `keys` with their file, 1-based line number and any read error."""
    threads = threads or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        decoded = list(pool.map(lambda k: _read_one(store, k), keys))
    raws, errors, counts = [], [], []
    for text, damage in decoded:
        raw, read_error = _lines(text, damage)
        if damage and read_error.null_count == len(read_error):  # damage between lines: say so once
            raw = pa.concat_arrays([raw, pa.array([""], pa.large_string())])
            read_error = pa.concat_arrays([read_error, pa.array([damage])])
        raws.append(raw)
        errors.append(read_error)
        counts.append(len(raw))
    counts_np = np.asarray(counts, dtype=np.int64)
    file_index = np.repeat(np.arange(len(keys), dtype=np.int32), counts_np)
    starts = np.repeat(np.cumsum(counts_np) - counts_np, counts_np)
    line_number = np.arange(1, len(file_index) + 1, dtype=np.int64) - starts
    table = pa.table(
        [
            pa.chunked_array([pa.array(file_index)]),
            pa.chunked_array([pa.array(line_number)]),
            pa.chunked_array(raws, pa.large_string()),
            pa.chunked_array(errors, pa.string()),
        ],
        schema=LINES_SCHEMA,
    )
    return LogLines(table, list(keys))

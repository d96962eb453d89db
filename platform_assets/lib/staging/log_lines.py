"""Read gzipped JSONL log files as a stream of raw Arrow lines, a file at a time, without parsing JSON.

Files are decompressed by ISA-L (`isal`, about 3x zlib) in threads that release the GIL, a
few files ahead of the consumer, so a day is never held in memory as text. Lines become Arrow strings by pointing offsets
into the decompressed buffer, so no Python object is made per line. A file that is
truncated, corrupt or not UTF-8 keeps every readable line; the rest is flagged with a read
error and ends in quarantine, never silently dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from isal import isal_zlib

from platform_assets.lib.cpu import usable_cores
from platform_assets.lib.lake_store import LakeStore

UTF8_BOM = b"\xef\xbb\xbf"
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
        stream = isal_zlib.decompressobj(31)
        try:
            out.append(stream.decompress(data))
        except isal_zlib.error as exc:
            return b"".join(out), f"corrupt gzip: {exc}"
        if not stream.eof:
            out.append(stream.flush())
            return b"".join(out), "truncated gzip"
        data = stream.unused_data
    return b"".join(out), None


def _lines(text: bytes, damage: str | None) -> tuple[pa.Array, pa.Array]:
    """Lines of `text` as Arrow strings without their line ends, and a per-line read error."""
    if text.startswith(UTF8_BOM):  # an editor's byte-order mark is not part of the first record
        text = text[len(UTF8_BOM) :]
    if b"\r" in text:  # rare: CRLF line ends become LF
        text = text.replace(b"\r\n", b"\n")
    newlines = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 10)
    n = len(newlines) + (1 if len(text) and not text.endswith(b"\n") else 0)  # a last line may lack its newline
    ends = newlines - np.arange(len(newlines))  # each line's end once the newlines before it are gone
    # One copy without the line ends, so SQL never has to trim them off each line.
    text = text.replace(b"\n", b"")
    if n > len(newlines):
        ends = np.append(ends, len(text))
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    errors: dict[int, str] = {}
    if damage and n > len(newlines):
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
    if damage and damage not in errors.values():  # damage between lines: say so once, on a line of its own
        raw = pa.concat_arrays([raw, pa.array([""], pa.large_string())])
        errors[n] = damage
        n += 1
    if not errors:
        return raw, pa.nulls(n, pa.string())
    return raw, pa.array([errors.get(i) for i in range(n)], pa.string())


def _file_lines(store: LakeStore, key: str, file_index: int) -> pa.RecordBatch:
    """One file's lines with their file, 1-based line number and any read error."""
    raw, read_error = _lines(*gunzip(store.read_bytes(key)))
    n = len(raw)
    return pa.RecordBatch.from_arrays(
        [pa.array(np.full(n, file_index, np.int32)), pa.array(np.arange(1, n + 1, dtype=np.int64)), raw, read_error],
        schema=LINES_SCHEMA,
    )


@dataclass(frozen=True)
class LogLines:
    """Raw lines of `files`, a file at a time; `file_index` refers to `files` by position."""

    files: list[str]
    batches: Iterator[pa.RecordBatch]  # read as it goes: consume once

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(LINES_SCHEMA, self.batches)


def read_log_lines(store: LakeStore, keys: list[str], threads: int | None = None) -> LogLines:
    """The lines of `keys`, decompressed `threads` files ahead of the consumer."""
    return LogLines(list(keys), _read_ahead(store, list(keys), threads or min(8, 2 * usable_cores())))


def _read_ahead(store: LakeStore, keys: list[str], threads: int) -> Iterator[pa.RecordBatch]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        ahead: deque[Future[pa.RecordBatch]] = deque()
        todo = iter(enumerate(keys))
        while True:
            for index, key in todo:  # keep `threads` files in flight, no more
                ahead.append(pool.submit(_file_lines, store, key, index))
                if len(ahead) >= threads:
                    break
            if not ahead:
                return
            yield ahead.popleft().result()

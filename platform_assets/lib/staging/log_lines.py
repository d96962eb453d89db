"""Read gzipped JSONL log files as a stream of raw Arrow lines, a file at a time, without parsing JSON.

Files are read a few ahead of the consumer by threads, so a day is never held in memory as
text, and every step of a file runs without the GIL, so the threads use every core:
libdeflate (`deflate`, faster than ISA-L and, unlike it, releasing the GIL) decompresses an
intact file in one call, a compiled pass (numba) splits it into Arrow strings without
per-line Python objects, and the producer's canonical lines are typed on the spot
(`canonical_events`). A file that is truncated, corrupt, multi-member or not UTF-8 takes the
careful path (ISA-L's streaming decoder, member by member) and keeps every readable line; the
rest is flagged with a read error and ends in quarantine, never silently dropped.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import deflate
import numpy as np
import pyarrow as pa
from isal import isal_zlib

from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.staging.canonical_events import TYPED_SCHEMA, split_lines

UTF8_BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b\x08"  # every gzip member starts with it
LINES_SCHEMA = pa.schema(
    [
        ("file_index", pa.int32()),
        ("line_number", pa.int64()),
        ("raw", pa.large_string()),
        ("read_error", pa.string()),
    ]
)
# A file's lines as delivered: typed (canonical) rows carry the values, the others their text.
DELIVERED_SCHEMA = pa.schema(
    [("file_index", pa.int32()), ("canonical", pa.bool_()), *TYPED_SCHEMA, *list(LINES_SCHEMA)[2:]]
)


def gunzip(data: bytes) -> tuple[bytes, str | None]:
    """Decompress every gzip member; on damage return what was readable and why it stopped."""
    whole = _single_member(data)
    if whole is not None:
        return whole, None
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


def _single_member(data: bytes) -> bytes | None:
    """An intact one-member file in one libdeflate call, or None for the streaming decoder.

    libdeflate decodes only the first member and ignores what follows, so it is trusted only
    when no second member can start (no other gzip magic) and the file ends with this
    member's own trailer (CRC-32 and size of what was decoded).
    """
    if len(data) < 18 or not data.startswith(GZIP_MAGIC) or data.find(GZIP_MAGIC, 1) >= 0:
        return None
    try:
        out = deflate.gzip_decompress(data)
    except (deflate.DeflateError, ValueError, MemoryError):
        return None
    trailer = int.from_bytes(data[-8:-4], "little"), int.from_bytes(data[-4:], "little")
    return out if trailer == (deflate.crc32(out), len(out) & 0xFFFFFFFF) else None


def _lines(text: bytes, damage: str | None, day: date | None) -> tuple[pa.RecordBatch, np.ndarray, pa.Array, pa.Array]:
    """A file's typed lines (canonical records of `day`), and its other lines: number, text, read error."""
    view = np.frombuffer(text, np.uint8)
    if text[:3] == UTF8_BOM:  # an editor's byte-order mark is not part of the first record
        view = view[len(UTF8_BOM) :]
    cut = len(view) > 0 and view[-1] != 10  # the last line lacks its newline
    try:
        split = split_lines(view, day, hold_last=bool(damage and cut))
    except pa.ArrowInvalid:  # a typed value that is not UTF-8: the whole file goes the careful way
        split = split_lines(view)
    numbers, binary = split.raw_line_number, split.raw
    n = len(binary)
    errors: dict[int, str] = {}
    if damage and cut:
        errors[n - 1] = damage  # the line the damage cut in half
    try:
        raw = binary.cast(pa.large_string())  # validates UTF-8
    except pa.ArrowInvalid:  # rare slow path: flag the lines that are not UTF-8, keep them readable
        lines = []
        for i, line in enumerate(binary.to_pylist()):
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(line.decode("utf-8", errors="backslashreplace"))
                errors.setdefault(i, "invalid utf-8")
        raw = pa.array(lines, pa.large_string())
    if damage and damage not in errors.values():  # damage between lines: say so once, on a line of its own
        raw = pa.concat_arrays([raw, pa.array([""], pa.large_string())])
        numbers = np.append(numbers, len(split.typed) + n + 1)
        errors[n] = damage
        n += 1
    read_error = pa.nulls(n, pa.string()) if not errors else pa.array([errors.get(i) for i in range(n)], pa.string())
    return split.typed, numbers, raw, read_error


def _file_lines(store: LakeStore, key: str, file_index: int, day: date | None) -> list[pa.RecordBatch]:
    """One file's lines (DELIVERED_SCHEMA): its typed rows, then its other lines with any read error."""
    typed, numbers, raw, read_error = _lines(*gunzip(store.read_bytes(key)), day)
    batches = []
    for n, columns in (
        (
            len(typed),
            {"canonical": pa.array(np.ones(len(typed), np.bool_)), **dict(zip(typed.column_names, typed.columns))},
        ),
        (
            len(raw),
            {
                "canonical": pa.array(np.zeros(len(raw), np.bool_)),
                "line_number": pa.array(numbers),
                "raw": raw,
                "read_error": read_error,
            },
        ),
    ):
        if n:
            columns["file_index"] = pa.array(np.full(n, file_index, np.int32))
            batches.append(
                pa.RecordBatch.from_arrays(
                    [columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in DELIVERED_SCHEMA],
                    schema=DELIVERED_SCHEMA,
                )
            )
    return batches


@dataclass(frozen=True)
class LogLines:
    """The lines of `files`, a file at a time; `file_index` refers to `files` by position."""

    files: list[str]
    day: date | None  # the day whose canonical records come typed; None: every line raw
    batches: Iterator[pa.RecordBatch]  # DELIVERED_SCHEMA, read as it goes: consume once

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(DELIVERED_SCHEMA, self.batches)


def read_log_lines(store: LakeStore, keys: list[str], day: date | None = None, threads: int | None = None) -> LogLines:
    """The lines of `keys`, read `threads` files ahead of the consumer (default: two per usable core).

    With `day`, the canonical records of that day come typed; without it every line is raw
    (the reference the typed path is tested against).
    """
    # Two files per core: a thread waiting for the GIL in the glue between compiled steps leaves
    # its core to another (measured: 2 per core loads a day about 20 % faster than 1 per core).
    return LogLines(list(keys), day, _read_ahead(store, list(keys), day, threads or min(16, 2 * usable_cores())))


def usable_cores() -> int:
    """The cores this process may run on (its affinity: `taskset`, a container's cpuset), not the machine's."""
    return len(os.sched_getaffinity(0))


def _read_ahead(store: LakeStore, keys: list[str], day: date | None, threads: int) -> Iterator[pa.RecordBatch]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        ahead: deque[Future[list[pa.RecordBatch]]] = deque()
        todo = iter(enumerate(keys))
        while True:
            for index, key in todo:  # keep `threads` files in flight, no more
                ahead.append(pool.submit(_file_lines, store, key, index, day))
                if len(ahead) >= threads:
                    break
            if not ahead:
                return
            yield from ahead.popleft().result()

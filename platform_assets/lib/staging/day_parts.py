"""A day of `staging/events` as parts appended as its log files land.

Each run stages only the files the day's manifest has not seen, in landing order, into one
more part: its events minus every event id an earlier part holds (first delivery still wins),
and its rejected lines as one more quarantine part. So a day's hourly arrivals parse each
line once instead of re-staging the whole day per file. A file staged before that changed or
went away, a file that landed before one already staged, or another staging version stages
the whole day again into a single part, as does `restage`.

The manifest (`_parts.json` beside the parts) is written last: it is the commit. Readers read
the parts it lists (`day_parts`); a part a failed run left behind is in no manifest.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa

from platform_assets.lib.lake_layout import EVENTS_PATH, EVENTS_QUARANTINE_PATH, partition_key, parts_key
from platform_assets.lib.lake_store import FileEntry, LakeStore
from platform_assets.lib.staging.events import (
    EVENTS_SCHEMA,
    QUARANTINE_SCHEMA,
    EventStats,
    transform_events,
    write_events,
)
from platform_assets.lib.staging.log_lines import read_log_lines

STAGING_VERSION = 2  # a manifest of another version is staged again whole
EARLIER_BATCH_ROWS = 1 << 16  # earlier parts' ids stream through DuckDB, which keeps only those that may repeat
CHECKS = ("null_keys", "outside_day", "duplicate_ids", "ids_staged_before")  # CHECKS_SQL's counts


class StagingConflict(Exception):
    """Another run staged the same day meanwhile; staging again reads its parts."""


@dataclass
class StagedDay:
    """What a day's manifest records: the files staged, in order, the parts, running totals."""

    files: list[dict] = field(default_factory=list)  # {"key", "size", "version"}, in staging order
    parts: list[str] = field(default_factory=list)
    quarantine_parts: list[str] = field(default_factory=list)
    stats: EventStats = field(default_factory=EventStats)
    reasons: dict[str, int] = field(default_factory=dict)
    drift: dict[str, int] = field(default_factory=dict)
    version: int = STAGING_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


@dataclass
class StagingRun:
    """One run's work on a day and the day as it stands after it."""

    day: StagedDay
    staged_files: list[str]  # the files this run read
    whole_day: bool  # staged whole (first time, a change, `restage`) rather than appended
    part: str | None  # the events part this run wrote (None: nothing new)
    part_head: pa.Table  # its first rows
    quarantine: pa.Table  # this run's rejected lines
    checks: dict[str, int]  # CHECKS of the new part
    part_bytes: int = 0


def _entry(f: FileEntry) -> dict:
    return {"key": f.key, "size": f.size, "version": f.version}


def staged_day(store: LakeStore, day: str) -> StagedDay | None:
    key = parts_key(EVENTS_PATH, day)
    if not store.exists(key):
        return None
    manifest = json.loads(store.read_bytes(key))
    return StagedDay(**{**manifest, "stats": EventStats(**manifest["stats"])})


def _parts_lost(store: LakeStore, day: str, staged: StagedDay | None) -> bool:
    """Whether a part the manifest lists is gone (deleted by hand, lost with a bucket's
    lifecycle rule): the day is then staged whole again rather than read with a hole."""
    if staged is None:
        return False
    present = {f.key for d in (EVENTS_PATH, EVENTS_QUARANTINE_PATH) for f in store.list_files(f"{d}/dt={day}")}
    return not {*staged.parts, *staged.quarantine_parts} <= present


def _unchanged_since(store: LakeStore, day: str, before: StagedDay | None) -> None:
    if staged_day(store, day) != before:
        raise StagingConflict(f"{day}: another run staged this day meanwhile; staging again reads its parts")


def files_to_stage(staged: StagedDay | None, listing: Sequence[FileEntry]) -> list[FileEntry] | None:
    """The files of `listing` (in landing order) to append, or None when the day must be staged
    whole: nothing staged yet, another version, or the staged files are not, unchanged, the first
    of the listing (one changed or went away, or a new one landed before one already staged)."""
    if staged is None or staged.version != STAGING_VERSION:
        return None
    now = [_entry(f) for f in listing]
    if now[: len(staged.files)] != staged.files:
        return None
    return list(listing[len(staged.files) :])


def _merged(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in sorted(set(a) | set(b))}


def _part_key(dataset: str, day: str, index: int, files: list[dict]) -> str:
    """Part 0 is where a day staged whole always was; later parts are named by their files too,
    so two runs that raced past the conflict check never write the same object."""
    if index == 0:
        return partition_key(dataset, day)
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]
    return f"{dataset}/dt={day}/part-{index}-{digest}.parquet"


def stage_day(
    store: LakeStore,
    day: date,
    listing: Sequence[FileEntry],
    memory_limit: str | None = None,
    restage: bool = False,
) -> StagingRun:
    """Stage the day's log files (`listing`, in landing order): only those not staged yet, as one
    more part, or the whole day into one part (see the module)."""
    iso = day.isoformat()
    before = staged_day(store, iso)
    fresh = None if restage or _parts_lost(store, iso, before) else files_to_stage(before, listing)
    whole = fresh is None
    todo = list(listing) if whole else fresh
    base = StagedDay() if whole else before
    if not todo and not whole:  # nothing new: nothing written, so nothing to fail a check
        nothing = EVENTS_SCHEMA.empty_table(), QUARANTINE_SCHEMA.empty_table(), dict.fromkeys(CHECKS, 0)
        return StagingRun(before, [], False, None, *nothing)
    earlier = store.iter_parquet(base.parts, ["event_id"], EARLIER_BATCH_ROWS)
    index = len(base.parts)
    entries = [_entry(f) for f in todo]
    part, quarantine_part = (_part_key(d, iso, index, entries) for d in (EVENTS_PATH, EVENTS_QUARANTINE_PATH))
    lines = read_log_lines(store, [f.key for f in todo])
    with (
        tempfile.TemporaryDirectory(prefix="events-") as tmp,
        transform_events(lines, day, memory_limit, earlier_ids=earlier) as result,
    ):
        events_file = Path(tmp) / "events.parquet"
        head = write_events(result.events, events_file)
        checks = result.checks(events_file)  # the file as written, before it is published
        _unchanged_since(store, iso, before)
        quarantine_size = store.write_parquet(quarantine_part, result.quarantine)
        size = store.put_file(part, events_file)
    after = StagedDay(
        files=base.files + entries,
        parts=base.parts + [part],
        quarantine_parts=base.quarantine_parts + [quarantine_part],
        stats=base.stats + result.stats,
        reasons=_merged(base.reasons, result.reasons),
        drift=_merged(base.drift, result.unexpected_fields),
    )
    _unchanged_since(store, iso, before)  # again, just before the commit: the parts took a while
    store.write_bytes(parts_key(EVENTS_QUARANTINE_PATH, iso), json.dumps({"parts": after.quarantine_parts}).encode())
    store.write_bytes(parts_key(EVENTS_PATH, iso), after.to_json())  # the commit
    if whole:  # the parts the day was made of before, now in no manifest
        old = {*before.parts, *before.quarantine_parts} if before else set()
        for stale in sorted(old - {part, quarantine_part}):
            store.delete(stale)
    return StagingRun(
        after, [f.key for f in todo], whole, part, head, result.quarantine, checks, size + quarantine_size
    )

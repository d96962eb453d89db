"""What `point_in_time_correct` checks: a sample of training rows against a brute-force reference.

The as-of join takes each photo's latest `user_activity` row with ts <= posted_at, so a count of
rows with `features_as_of > posted_at` restates the join's own predicate: it cannot see a value
that already counts the future (a window that reaches past its row's ts, a tile or a state built
from the wrong days, an event filed under the wrong day). This module recomputes the author
features of a sample of the training rows as of their posted_at, straight from the staged
events and photos — for each photo, the author's events filtered by time and counted, in plain
Python — and compares them with the rows. It shares no code with `user_activity`,
`activity_tiles`, `latest_activity` or the join.

The sample: up to `SAMPLE_PHOTOS` rows, those whose photo ids come first in a fixed hash order,
among the rows of at most `SAMPLE_DAYS` posting days of the run (its last day, and the others
first in the hash order of their dates): the same rows on every run of the same range. Its cost
does not grow with the run's range: it reads the staged photos of the sampled authors and the
staged events of at most `SAMPLE_DAYS` x 9 days, filtered to those authors and their photos.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.lib.features.training_set import point_in_time_violations
from platform_assets.lib.lake_layout import EVENTS_PATH, day_parts, staging_key
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.staging.events import EVENTS_SCHEMA

SAMPLE_PHOTOS = 200  # training rows recomputed per run
SAMPLE_DAYS = 2  # posting days they come from: the run's last day and one other
SESSION_GAP = timedelta(minutes=30)  # a session starts after more than this without an event of the user
WEEK, MONTH = timedelta(days=7), timedelta(days=30)
# A photo posted on day d reads the events of days d-8 .. d: its 7-day windows start on day d-7,
# and whether an event at a window's start starts a session depends on the user's event before
# it, up to SESSION_GAP earlier (on day d-8 when the window starts in the first 30 minutes).
DAYS_BACK = 8
FEATURES = (
    "author_logins_today",
    "author_likes_given_7d",
    "author_likes_received_7d",
    "author_posts_30d",
    "author_sessions_7d",
)
EVENT_COLUMNS = ("user_id", "ts", "event_type", "photo_id")
MISMATCHES_SHOWN = 20  # mismatches listed in the check's metadata (all are counted)
_EVENTS = pa.schema([EVENTS_SCHEMA.field(c) for c in EVENT_COLUMNS])
_PHOTOS = pa.schema([("photo_id", pa.int64()), ("user_id", pa.int64()), ("posted_at", pa.timestamp("us", tz="UTC"))])


class Mismatch(NamedTuple):
    photo_id: int
    feature: str
    expected: int | float
    got: int | float | None


@dataclass
class PointInTimeReport:
    rows: int  # training rows of the run
    sampled: int  # of them recomputed
    days: list[str]  # the posting days the sample comes from
    events_read: int  # staged events the reference read (the sampled authors' and likes on their photos)
    mismatches: list[Mismatch]
    as_of_after_posted: int  # rows whose joined activity row is after posted_at (the join's own predicate)
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.mismatches and self.as_of_after_posted == 0


def _hash_order(values: np.ndarray) -> np.ndarray:
    """The order of int64 `values` by splitmix64's finalizer: pseudo-random, the same on every host."""
    z = values.astype(np.int64).view(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.lexsort((values, z ^ (z >> np.uint64(31))))


def _posting_days(rows: pa.Table) -> list[date]:
    return [t.date() for t in rows["posted_at"].to_pylist()]


def sample_rows(training_set: pa.Table, photos: int = SAMPLE_PHOTOS, days: int = SAMPLE_DAYS) -> pa.Table:
    """Up to `photos` rows of `training_set`: among the rows of its last posting day and of the
    `days` - 1 other days first in the hash order of their dates, those first in the hash order
    of their photo ids. In photo id order."""
    if not training_set.num_rows:
        return training_set
    posted = _posting_days(training_set)
    every = sorted(set(posted))
    others = np.array([d.toordinal() for d in every[:-1]], np.int64)
    chosen = {every[-1], *(every[i] for i in _hash_order(others)[: days - 1])}
    rows = training_set.filter(pa.array([d in chosen for d in posted]))
    picked = _hash_order(rows["photo_id"].to_numpy())[:photos]
    return rows.take(np.sort(picked)).sort_by("photo_id")


def read_reference_inputs(store: LakeStore, sample: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(photos, events): the staged photos of the sampled authors, and the staged events the
    reference needs: the authors' own and the likes on their photos, on days d-8 .. d of each
    sampled posting day d, from 7 days and 30 minutes before its first photo to its last."""
    if not sample.num_rows:
        return _PHOTOS.empty_table(), _EVENTS.empty_table()
    authors = pc.unique(sample["user_id"])
    photos = store.read_parquet(
        staging_key("photos"), where=pc.field("user_id").isin(authors), columns=_PHOTOS.names
    ).cast(_PHOTOS)
    spans: dict[date, tuple[datetime, datetime]] = {}
    for day, posted in zip(_posting_days(sample), sample["posted_at"].to_pylist()):
        first, last = spans.get(day, (posted, posted))
        spans[day] = (min(first, posted), max(last, posted))
    read = sorted({(d - timedelta(days=k)).isoformat() for d in spans for k in range(DAYS_BACK + 1)})
    keys = [key for d in read for key in day_parts(store, EVENTS_PATH, d)]
    if not keys:
        return photos, _EVENTS.empty_table()
    ts = pc.field("ts")
    when = None
    for first, last in spans.values():
        span = (ts >= pa.scalar(first - WEEK - SESSION_GAP, _EVENTS.field("ts").type)) & (
            ts <= pa.scalar(last, _EVENTS.field("ts").type)
        )
        when = span if when is None else when | span
    whose = pc.field("user_id").isin(authors) | pc.field("photo_id").isin(photos["photo_id"])
    batches = store.iter_parquet(keys, list(EVENT_COLUMNS), 1 << 17, whose & when)
    return photos, pa.Table.from_batches([b.select(list(EVENT_COLUMNS)) for b in batches], _EVENTS)


def author_features_as_of(sample: pa.Table, photos: pa.Table, events: pa.Table) -> dict[int, dict[str, int]]:
    """Each sampled row's (photo_id, user_id, posted_at) author features at posted_at, by brute
    force over `photos` (photo_id, user_id, posted_at) and `events` (user_id, ts, event_type,
    photo_id), which must hold every photo of the authors and every event they need:
    - logins_today: the author's logins on posted_at's UTC day, at or before posted_at;
    - likes_given_7d: the author's likes in [posted_at - 7 days, posted_at];
    - likes_received_7d: likes by anyone on the author's photos in that window;
    - posts_30d: the author's photos with posted_at in [posted_at - 30 days, posted_at];
    - sessions_7d: the author's events in the 7-day window more than 30 minutes after the
      author's event before them (or with none before)."""
    author_of = dict(zip(photos["photo_id"].to_pylist(), photos["user_id"].to_pylist()))
    posts, own, received = defaultdict(list), defaultdict(list), defaultdict(list)
    for author, posted in zip(photos["user_id"].to_pylist(), _micros(photos["posted_at"])):
        posts[author].append(posted)
    for user, ts, kind, photo in zip(
        events["user_id"].to_pylist(),
        _micros(events["ts"]),
        events["event_type"].to_pylist(),
        events["photo_id"].to_pylist(),
    ):
        own[user].append((ts, kind))
        if kind == "like" and photo in author_of:
            received[author_of[photo]].append(ts)
    week, month, gap = (_microseconds(d) for d in (WEEK, MONTH, SESSION_GAP))
    starts: dict[int, list[int]] = {}
    expected = {}
    for photo, author, posted in zip(
        sample["photo_id"].to_pylist(), sample["user_id"].to_pylist(), _micros(sample["posted_at"])
    ):
        mine = own[author]
        if author not in starts:  # the author's events in time order, and the session starts among them
            mine.sort()
            starts[author] = [t for i, (t, _) in enumerate(mine) if i == 0 or t - mine[i - 1][0] > gap]
        midnight = posted - posted % _microseconds(timedelta(days=1))  # posted_at's UTC day
        expected[photo] = {
            "author_logins_today": sum(k == "login" and midnight <= t <= posted for t, k in mine),
            "author_likes_given_7d": sum(k == "like" and posted - week <= t <= posted for t, k in mine),
            "author_likes_received_7d": sum(posted - week <= t <= posted for t in received[author]),
            "author_posts_30d": sum(posted - month <= t <= posted for t in posts[author]),
            "author_sessions_7d": sum(posted - week <= t <= posted for t in starts[author]),
        }
    return expected


def _microseconds(span: timedelta) -> int:
    return span // timedelta(microseconds=1)


def _micros(times: pa.ChunkedArray) -> list[int]:
    """Microseconds since the epoch (UTC): exact, and the arithmetic plain integers."""
    return pc.cast(times.cast(pa.timestamp("us", tz="UTC")), pa.int64()).to_pylist()


def _same(expected: int | float, got: int | float | None) -> bool:
    if isinstance(expected, float) or isinstance(got, float):
        return got is not None and math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-9)
    return expected == got


def compare(rows: pa.Table, expected: dict[int, dict[str, int]]) -> list[Mismatch]:
    """Each (photo, feature) of `rows` whose value is not the reference's: counts exactly, floats
    to a relative 1e-9."""
    return [
        Mismatch(row["photo_id"], f, expected[row["photo_id"]][f], row[f])
        for row in rows.select(["photo_id", *FEATURES]).to_pylist()
        for f in FEATURES
        if not _same(expected[row["photo_id"]][f], row[f])
    ]


def verify_point_in_time(training_set: pa.Table, store: LakeStore) -> PointInTimeReport:
    """The training rows of a run against the reference recomputed from `store`'s staged
    events and photos, on the sample `sample_rows` picks; and the count of rows whose joined
    activity row is after posted_at."""
    started = time.perf_counter()
    sample = sample_rows(training_set)
    photos, events = read_reference_inputs(store, sample)
    mismatches = compare(sample, author_features_as_of(sample, photos, events))
    return PointInTimeReport(
        rows=training_set.num_rows,
        sampled=sample.num_rows,
        days=sorted({d.isoformat() for d in _posting_days(sample)}),
        events_read=events.num_rows,
        mismatches=mismatches,
        as_of_after_posted=point_in_time_violations(training_set),
        seconds=time.perf_counter() - started,
    )


def mismatch_rows(report: PointInTimeReport) -> list[dict]:
    """The first `MISMATCHES_SHOWN` mismatches, as rows for the check's metadata."""
    return [
        {"photo_id": m.photo_id, "feature": m.feature, "expected": m.expected, "got": m.got}
        for m in report.mismatches[:MISMATCHES_SHOWN]
    ]

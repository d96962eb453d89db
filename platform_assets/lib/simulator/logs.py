"""Hourly gzipped JSONL activity logs with planted defects at a known, reported rate."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow as pa

EVENT_TYPES = ("login", "view", "like", "comment", "share", "post")
INTERACTIONS = np.array([1, 2, 3, 4])  # view, like, comment, share
INTERACTION_SHARE = np.array([0.70, 0.20, 0.06, 0.04])
CLIENTS = ("ios", "android", "web")
DEFECT_KINDS = ("malformed_json", "missing_field", "wrong_type")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass
class EventBatch:
    """Events as columns; photo_id is -1 where an event has no photo."""

    ts_ms: np.ndarray
    user_id: np.ndarray
    photo_id: np.ndarray
    event_type: np.ndarray
    client: np.ndarray

    @staticmethod
    def concat(batches: list[EventBatch]) -> EventBatch:
        return EventBatch(*(np.concatenate([getattr(b, f) for b in batches]) for f in EventBatch.__dataclass_fields__))

    def take(self, index: np.ndarray | slice) -> EventBatch:
        """The events at `index` (positions, a boolean mask or a slice), every column alike."""
        return EventBatch(*(getattr(self, f)[index] for f in EventBatch.__dataclass_fields__))

    def sorted(self) -> EventBatch:
        return self.take(np.argsort(self.ts_ms, kind="stable"))

    def __len__(self) -> int:
        return len(self.ts_ms)


@dataclass
class FileReport:
    """What was planted in one log file: the test oracle for the events transform."""

    key: str
    day: str
    lines: int = 0
    valid_events: int = 0
    duplicate_lines: int = 0
    drift_lines: int = 0
    defects: Counter = field(default_factory=Counter)


def logins(rng: np.random.Generator, activity: np.ndarray, start_ms: int, span_ms: int) -> EventBatch:
    """Each user logs in at a rate that follows their activity level."""
    counts = rng.poisson(activity * 1.2 * span_ms / DAY_MS)
    user = np.repeat(np.arange(1, len(activity) + 1), counts)
    n = len(user)
    return EventBatch(
        ts_ms=start_ms + rng.integers(0, span_ms, size=n),
        user_id=user,
        photo_id=np.full(n, -1),
        event_type=np.zeros(n, dtype=np.int8),
        client=rng.integers(0, len(CLIENTS), size=n).astype(np.int8),
    )


def posts(photo_id: np.ndarray, author: np.ndarray, posted_ms: np.ndarray, rng: np.random.Generator) -> EventBatch:
    n = len(photo_id)
    return EventBatch(posted_ms, author, photo_id, np.full(n, 5, np.int8), rng.integers(0, 3, size=n).astype(np.int8))


def interactions(
    rng: np.random.Generator,
    budget: int,
    photo_id: np.ndarray,
    posted_ms: np.ndarray,
    score: np.ndarray,
    activity: np.ndarray,
) -> EventBatch:
    """Views, likes, comments and shares: more for photos with a higher planted score,
    mostly in the 24 h after posting, some later (so the label window matters)."""
    weight = np.exp(score)
    counts = rng.poisson(budget * weight / weight.sum())
    idx = np.repeat(np.arange(len(photo_id)), counts)
    n = len(idx)
    late = rng.random(n) < 0.15
    delay_h = np.where(late, rng.uniform(24, 72, n), np.minimum(rng.exponential(5, n), 23.99))
    return EventBatch(
        ts_ms=posted_ms[idx] + (delay_h * HOUR_MS).astype(np.int64) + 1000,
        user_id=rng.choice(len(activity), size=n, p=activity / activity.sum()) + 1,
        photo_id=photo_id[idx],
        event_type=rng.choice(INTERACTIONS, size=n, p=INTERACTION_SHARE).astype(np.int8),
        client=rng.integers(0, len(CLIENTS), size=n).astype(np.int8),
    )


def _event_ids(rng: np.random.Generator, n: int) -> pl.Series:
    raw = pa.array(np.frombuffer(rng.bytes(8 * n), dtype="S8"), type=pa.binary(8)).cast(pa.binary())
    return ("ev_" + pl.Series(pl.from_arrow(raw)).bin.encode("hex")).alias("event_id")


def to_jsonl_lines(rng: np.random.Generator, batch: EventBatch, drift: bool) -> list[str]:
    """Render events as JSON lines; android clients send local-offset timestamps (+05:30)."""
    df = pl.DataFrame(
        {
            "ts_ms": batch.ts_ms,
            "user_id": batch.user_id.astype(np.int64),
            "photo_id": batch.photo_id.astype(np.int64),
            "event_type": np.array(EVENT_TYPES)[batch.event_type],
            "client": np.array(CLIENTS)[batch.client],
        }
    )
    utc = pl.from_epoch("ts_ms", time_unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    shifted = (pl.from_epoch("ts_ms", time_unit="ms") + pl.duration(hours=5, minutes=30)).dt.strftime(
        "%Y-%m-%dT%H:%M:%S%.3f+05:30"
    )
    df = df.select(
        _event_ids(rng, len(df)),
        pl.when(pl.col("client") == "android").then(shifted).otherwise(utc).alias("ts"),
        "event_type",
        "user_id",
        pl.when(pl.col("photo_id") >= 0).then(pl.col("photo_id")).alias("photo_id"),
        "client",
    )
    if drift:  # a new app release adds a field nobody told the platform about
        df = df.with_columns(pl.lit("5.2.0").alias("app_version"))
    return df.write_ndjson().splitlines()


def _corrupt(rng: np.random.Generator, line: str, kind: str) -> str:
    if kind == "malformed_json":
        return line[: max(1, len(line) // 2)]
    record = json.loads(line)
    if kind == "missing_field":
        del record[str(rng.choice(["event_id", "ts", "user_id", "event_type"]))]
    else:  # wrong_type
        which = rng.integers(3)
        if which == 0:
            record["user_id"] = f"user-{record['user_id']}"
        elif which == 1:
            record["ts"] = 1_700_000_000
        else:
            record["event_type"] = 42
    return json.dumps(record, separators=(",", ":"))


def plant_defects(rng: np.random.Generator, lines: list[str], rate: float, report: FileReport) -> list[str]:
    """Corrupt a share of lines and duplicate another share, recording every change."""
    n = len(lines)
    bad = rng.choice(n, size=min(n, rng.binomial(n, rate)), replace=False) if n else np.array([], int)
    for i in bad:
        kind = DEFECT_KINDS[rng.integers(len(DEFECT_KINDS))]
        lines[i] = _corrupt(rng, lines[i], kind)
        report.defects[kind] += 1
    good = np.setdiff1d(np.arange(n), bad)
    dups = rng.choice(good, size=min(len(good), rng.binomial(n, rate)), replace=False) if len(good) else []
    for i in sorted(dups, reverse=True):
        lines.insert(int(rng.integers(i, n + 1)), lines[i])
    report.duplicate_lines += len(dups)
    report.valid_events += n - len(bad)
    report.lines = len(lines)
    return lines


def gzip_lines(lines: list[str]) -> bytes:
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6, mtime=0)


def log_key(ts_ms: int, part: str) -> str:
    t = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return f"logs/dt={t:%Y-%m-%d}/hour={t:%H}/{part}.jsonl.gz"

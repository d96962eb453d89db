"""Where each dataset lives in the lake, and how raw log files map to daily partitions: every
lake path is spelled here once."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.lib.lake_store import FileEntry, LakeStore

LOGS_PREFIX = "logs"
# Daily datasets: one Parquet file per day under `<dataset>/dt=YYYY-MM-DD/` (see partition_key).
EVENTS_PATH = "staging/events"
EVENTS_QUARANTINE_PATH = "staging/events_quarantine"
ACTIVITY_TILES_PATH = "features/activity_tiles"
USER_ACTIVITY_PATH = "features/user_activity"
LATEST_ACTIVITY_PATH = "features/latest_activity"
LABELS_PATH = "features/popularity_labels"
TRAINING_SET_PATH = "features/training_set"
# Embeddings by the photo's posting day: a day's refresh reads and writes only that day.
IMAGE_EMBEDDINGS_PATH = "embeddings/image_embeddings"
IMAGE_QUARANTINE_PATH = "embeddings/image_quarantine"
TITLE_EMBEDDINGS_PATH = "embeddings/title_embeddings"
# Whole-table datasets.
PHOTO_FEATURES_FILE = "features/photo_features.parquet"
ENCODER_POINTER = "embeddings/image_encoder/current.json"
TABLE_ROW_GROUP_ROWS = 65_536  # app tables' snapshots, staged tables, photo features: what a writer holds
EMBEDDINGS_ROW_GROUP_ROWS = 8_192  # 12 MB of title vectors: what a writer holds and a reader of a few photos reads
# Optional (photo_id, planted_score): a lake that knows each photo's true popularity (the
# simulator's does) lets the model report the ceiling it could reach; production lakes omit it.
GROUND_TRUTH_FILE = "_simulator/photo_truth.parquet"
_LOG_KEY = re.compile(r"^logs/dt=(\d{4}-\d{2}-\d{2})/hour=([01]\d|2[0-3])/[^/]+\.jsonl\.gz$")


def raw_snapshot_key(table: str) -> str:
    return f"raw/app_db/{table}.parquet"


def staging_key(table: str) -> str:
    return f"staging/{table}.parquet"


def encoder_weights_key(version: str) -> str:
    return f"embeddings/image_encoder/weights-{version}.pt"


def partition_key(dataset: str, day: str) -> str:
    return f"{dataset}/dt={date.fromisoformat(day).isoformat()}/part-0.parquet"


def parts_key(dataset: str, day: str) -> str:
    """The manifest of a day written in parts (`staging/events`: one per arrival), beside them."""
    return f"{dataset}/dt={date.fromisoformat(day).isoformat()}/_parts.json"


def day_parts(store: LakeStore, dataset: str, day: str) -> list[str]:
    """The files that make up one day of `dataset`: those its parts manifest lists, else its
    single file; none when the day was never written."""
    if store.exists(parts_key(dataset, day)):
        return json.loads(store.read_bytes(parts_key(dataset, day)))["parts"]
    return [partition_key(dataset, day)] if store.exists(partition_key(dataset, day)) else []


def log_day(key: str) -> str | None:
    """The day a log file belongs to, from its `dt=` folder; None for files that are not logs."""
    match = _LOG_KEY.match(key)
    return match.group(1) if match else None


SOURCE_DIGEST = "source_digest"  # metadata of an events materialization: the DayListing digest of what it read


@dataclass
class DayListing:
    """The log files of one day and a digest of their (key, size, version): the day's data version."""

    files: list[FileEntry] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.key):
            h.update(f"{f.key}\0{f.size}\0{f.version}\n".encode())
        return h.hexdigest()[:24]


def log_day_prefix(day: str) -> str:
    """The folder of one day's log files."""
    return f"{LOGS_PREFIX}/dt={date.fromisoformat(day).isoformat()}"


def list_log_days(store: LakeStore, only: list[str] | None = None) -> tuple[dict[str, DayListing], list[str]]:
    """Log files grouped by day, plus the keys under `logs/` that do not follow the layout.

    `only`: list just these days' folders (one request each), so the cost does not grow with
    the lake's history; None lists the whole logs prefix."""
    days: dict[str, DayListing] = {}
    strays: list[str] = []
    prefixes = [LOGS_PREFIX] if only is None else [log_day_prefix(d) for d in sorted(set(only))]
    for entry in (e for prefix in prefixes for e in store.list_files(prefix)):
        day = log_day(entry.key)
        if day is None:
            strays.append(entry.key)
        else:
            days.setdefault(day, DayListing()).files.append(entry)
    return dict(sorted(days.items())), strays


def read_days(store: LakeStore, dataset: str, days: list[str], schema: pa.Schema) -> pa.Table:
    """The daily partitions of `dataset` that exist among `days`, as one table."""
    tables = [store.read_parquet(key) for d in days for key in day_parts(store, dataset, d)]
    return pa.concat_tables([t.cast(schema) for t in tables]) if tables else schema.empty_table()


def day_range(first: date, last: date) -> list[str]:
    """ISO days from `first` to `last`, both included."""
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def posted_on(day: str) -> pc.Expression:
    """The staged photos posted on `day` (UTC), as a filter a Parquet read pushes down."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
    return (pc.field("posted_at") >= start) & (pc.field("posted_at") < start + timedelta(days=1))

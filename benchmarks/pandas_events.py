"""The baseline: a straightforward pandas implementation of the `events` transform.

Same rules as `platform_assets.lib.staging.events` (one reason per bad line, first delivery
wins on duplicate ids, UTC timestamps, out-of-day events quarantined), written the way a
careful engineer would without DuckDB: json.loads per line, then vectorised pandas checks.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta

import pandas as pd

EVENT_TYPES = {"login", "view", "like", "comment", "share", "post"}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def pandas_events(paths: list[tuple[str, str]], day: date) -> tuple[pd.DataFrame, int]:
    """`paths` are (local path, lake key) pairs; returns (events, quarantined line count)."""
    records, sources, numbers = [], [], []
    quarantined = 0
    for path, key in paths:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                try:
                    record = json.loads(line)
                except ValueError:
                    quarantined += 1
                    continue
                if not isinstance(record, dict):
                    quarantined += 1
                    continue
                records.append(record)
                sources.append(key)
                numbers.append(number)
    df = pd.DataFrame(records, dtype=object)  # keep JSON types as parsed, for the type checks
    for col in ("event_id", "ts", "event_type", "user_id", "photo_id", "client"):
        if col not in df:
            df[col] = None
    df["source_file"], df["line_number"] = sources, numbers
    ok = df[["event_id", "ts", "event_type", "user_id", "client"]].notna().all(axis=1)
    ok &= df["event_id"].map(lambda v: isinstance(v, str) and v != "")
    ok &= df["ts"].map(lambda v: isinstance(v, str))
    ok &= df["event_type"].map(lambda v: isinstance(v, str))
    ok &= df["user_id"].map(_is_int)
    ok &= df["photo_id"].map(lambda v: v is None or _is_int(v) or v != v)
    ok &= df["client"].map(lambda v: isinstance(v, str))
    ts = pd.to_datetime(df["ts"].where(ok), utc=True, errors="coerce", format="ISO8601")
    start = pd.Timestamp(datetime.combine(day, datetime.min.time(), tzinfo=UTC))
    ok &= ts.notna() & df["event_type"].isin(EVENT_TYPES)
    ok &= (df["event_type"] == "login") | df["photo_id"].notna()
    ok &= (ts >= start) & (ts < start + timedelta(days=1))
    quarantined += int((~ok).sum())
    valid = df[ok].assign(ts=ts[ok])
    valid = valid.sort_values(["source_file", "line_number"]).drop_duplicates("event_id", keep="first")
    valid = valid.astype({"user_id": "int64", "photo_id": "Int64"})
    out = valid[["event_id", "ts", "event_type", "user_id", "photo_id", "client", "source_file"]]
    return out.sort_values(["ts", "event_id"]).reset_index(drop=True), quarantined


if __name__ == "__main__":  # tiny self-check on one file
    import sys

    print(pandas_events([(sys.argv[1], sys.argv[1])], date.fromisoformat(sys.argv[2]))[0].head())

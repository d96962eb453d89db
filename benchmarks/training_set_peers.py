"""The peers of the training-set benchmark, run in `benchmarks/.venv-feast` (feast, pandas):
pandas `merge_asof` and Feast `get_historical_features` over the same Parquet inputs, each
timed from the files (as the platform's side is), its output's write left out."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd

from benchmarks.common import peak_rss_mb

AUTHOR = ["logins_today", "likes_given_7d", "likes_received_7d", "posts_30d", "sessions_7d"]


def load(inputs: Path, activity: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None, dict]:
    """The inputs from their Parquet files; `activity=False` leaves `user_activity` to Feast,
    whose file source reads it."""
    span = json.loads((inputs / "range.json").read_text())
    return (
        pd.read_parquet(inputs / "photo_features.parquet"),
        pd.read_parquet(inputs / "labels.parquet"),
        pd.read_parquet(inputs / "user_activity.parquet") if activity else None,
        span,
    )


def finish(entities: pd.DataFrame, out: Path) -> None:
    for c in AUTHOR:
        entities[f"author_{c}"] = entities[c].fillna(0).astype("int64")
    entities[["photo_id", *[f"author_{c}" for c in AUTHOR], "popularity_score"]].sort_values("photo_id").to_parquet(
        out, index=False
    )


def entities_of(photos: pd.DataFrame, labels: pd.DataFrame, span: dict) -> pd.DataFrame:
    ready = labels[labels["label_ready"]][["photo_id", "popularity_score"]]
    df = photos.merge(ready, on="photo_id")
    start, end = pd.Timestamp(span["start"]), pd.Timestamp(span["end"])
    return df[(df["posted_at"] >= start) & (df["posted_at"] < end)]


def run_pandas(inputs: Path, out: Path) -> float:
    t = time.perf_counter()
    photos, labels, activity, span = load(inputs)
    df = entities_of(photos, labels, span).sort_values("posted_at")
    right = activity.sort_values("ts")
    joined = pd.merge_asof(df, right, left_on="posted_at", right_on="ts", by="user_id", direction="backward")
    seconds = time.perf_counter() - t
    finish(joined, out)
    return seconds


def run_feast(inputs: Path, out: Path) -> float:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
    from feast.types import Int64

    with tempfile.TemporaryDirectory() as repo:
        config = RepoConfig(
            project="bench",
            registry=f"{repo}/registry.db",
            provider="local",
            offline_store={"type": "file"},
            entity_key_serialization_version=3,
            online_store={"type": "sqlite", "path": f"{repo}/online.db"},
            repo_path=repo,
        )
        store = FeatureStore(config=config)
        user = Entity(name="user", join_keys=["user_id"])
        view = FeatureView(
            name="user_activity",
            entities=[user],
            ttl=timedelta(days=31),
            schema=[Field(name=c, dtype=Int64) for c in AUTHOR],
            source=FileSource(path=str(inputs / "user_activity.parquet"), timestamp_field="ts"),
        )
        store.apply([user, view])
        t = time.perf_counter()
        photos, labels, _, span = load(inputs, activity=False)
        entities = entities_of(photos, labels, span).rename(columns={"posted_at": "event_timestamp"})
        joined = store.get_historical_features(
            entity_df=entities[["photo_id", "user_id", "event_timestamp", "popularity_score"]],
            features=[f"user_activity:{c}" for c in AUTHOR],
        ).to_df()
        seconds = time.perf_counter() - t
    finish(joined, out)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", required=True, choices=["pandas", "feast"])
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    run = run_pandas if args.child == "pandas" else run_feast
    seconds = run(Path(args.inputs), Path(args.out) / f"{args.child}.parquet")
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main()

"""`photo_features`: what is known about a photo at the moment it is posted."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import polars as pl
import pyarrow as pa

from platform_assets.lib.staging.arrow_utils import conform_to, described_schema

PHOTO_FEATURES_SCHEMA = described_schema(
    ("photo_id", pa.int64(), "The photo."),
    ("user_id", pa.int64(), "Its author."),
    ("posted_at", pa.timestamp("us", tz="UTC"), "When it was posted: the as-of time of every feature."),
    ("posted_hour_local", pa.int8(), "Hour of posting in the author's time zone (UTC when unknown)."),
    ("posted_weekday_local", pa.int8(), "ISO weekday of posting (1 = Monday) in the author's time zone."),
    ("title_length", pa.int32(), "Characters in the title (0 when none)."),
    ("title_words", pa.int32(), "Words in the title."),
    ("location_bucket", pa.string(), "1° latitude/longitude cell 'lat,lon', 'unknown' without coordinates."),
    ("author_tenure_days", pa.float64(), "Days from the author's signup to posting."),
)


def compute_photo_features(photos: pa.Table, users: pa.Table) -> pa.Table:
    """The features of every photo (`photo_features_batches` gathered: small tables, benchmarks)."""
    return pa.concat_tables(
        [PHOTO_FEATURES_SCHEMA.empty_table(), *photo_features_batches(photos.sort_by("photo_id").to_batches(), users)]
    )


def photo_features_batches(photos: Iterable[pa.RecordBatch], users: pa.Table) -> Iterator[pa.Table]:
    """The features of batches of photos in photo id order, a batch at a time: memory holds a
    batch and the users' `user_id`, `signup_at` and `timezone`, not every photo."""
    authors = pl.from_arrow(users.select(["user_id", "signup_at", "timezone"]))
    assert isinstance(authors, pl.DataFrame)
    for batch in photos:
        yield _features(pl.from_arrow(batch).join(authors, on="user_id", how="left"))


def _features(df: pl.DataFrame) -> pa.Table:
    """Local time needs each author's time zone: converted per zone in Polars (a handful of zones)."""
    parts = []
    for (zone,), group in df.group_by("timezone", maintain_order=True):
        local = pl.col("posted_at").dt.convert_time_zone(zone or "UTC")
        parts.append(
            group.with_columns(
                local.dt.hour().alias("posted_hour_local"), local.dt.weekday().alias("posted_weekday_local")
            )
        )
    df = (
        pl.concat(parts)
        if parts
        else df.with_columns(
            pl.lit(None, pl.Int8).alias("posted_hour_local"), pl.lit(None, pl.Int8).alias("posted_weekday_local")
        )
    )
    title = pl.col("title").fill_null("")
    out = df.with_columns(
        title.str.len_chars().alias("title_length"),
        title.str.split(" ").list.eval(pl.element().filter(pl.element() != "")).list.len().alias("title_words"),
        pl.when(pl.col("latitude").is_null() | pl.col("longitude").is_null())
        .then(pl.lit("unknown"))
        .otherwise(
            pl.format("{},{}", pl.col("latitude").floor().cast(pl.Int32), pl.col("longitude").floor().cast(pl.Int32))
        )
        .alias("location_bucket"),
        ((pl.col("posted_at") - pl.col("signup_at")).dt.total_seconds() / 86400).alias("author_tenure_days"),
    ).sort("photo_id")
    return conform_to(out.to_arrow(), PHOTO_FEATURES_SCHEMA)

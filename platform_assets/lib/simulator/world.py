"""Users and photos with a planted popularity signal.

Popularity depends on image content (class, style), title words, local posting hour and the
author's activity, so a model using the platform's features can beat one that does not, and a
leaking join shows up as a too-good validation score.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from platform_assets.lib.simulator.images import CLASSES, STYLES

CLASS_EFFECT = np.array([0.8, 0.5, -0.2, 0.0, 0.3, 1.0])
STYLE_EFFECT = np.array([0.0, 0.4, -0.1, -0.5])

# (timezone, country, home latitude, home longitude)
REGIONS = (
    ("UTC", "GB", 51.5, -0.1),
    ("Europe/Berlin", "DE", 52.5, 13.4),
    ("America/New_York", "US", 40.7, -74.0),
    ("America/Los_Angeles", "US", 34.1, -118.2),
    ("Asia/Tokyo", "JP", 35.7, 139.7),
    ("Asia/Kolkata", "IN", 19.1, 72.9),
    ("Australia/Sydney", "AU", -33.9, 151.2),
)

CLASS_WORDS = {
    "sunset": ["sunset", "dusk", "sky", "horizon", "glow"],
    "beach": ["beach", "waves", "sand", "sea", "surf"],
    "forest": ["forest", "trees", "trail", "moss", "pines"],
    "city": ["city", "street", "skyline", "lights", "downtown"],
    "food": ["dinner", "brunch", "pasta", "dessert", "coffee"],
    "pet": ["dog", "cat", "puppy", "kitten", "buddy"],
}
# Title words that move popularity: the title-embedding signal.
HOT_WORDS = {"golden": 0.5, "amazing": 0.4, "cute": 0.5, "epic": 0.3, "finally": 0.2}
COLD_WORDS = {"test": -0.5, "blurry": -0.4, "random": -0.2}
FILLER = ["my", "the", "a", "today", "with", "friends", "weekend", "morning", "view", "again"]


@dataclass(frozen=True)
class World:
    users: pl.DataFrame  # user_id, username, signup_at, country, timezone, activity
    photos: pl.DataFrame  # app-database columns
    truth: pl.DataFrame  # photo_id, visual_class, style, planted_score


def _local_offsets(start: date, days: int) -> np.ndarray:
    """UTC offset in hours of each region on each day (DST included)."""
    out = np.zeros((len(REGIONS), days))
    for r, (tz, *_rest) in enumerate(REGIONS):
        zone = ZoneInfo(tz)
        for d in range(days):
            noon = datetime(start.year, start.month, start.day, 12, tzinfo=UTC) + timedelta(days=d)
            out[r, d] = noon.astimezone(zone).utcoffset().total_seconds() / 3600
    return out


def _titles(rng: np.random.Generator, classes: np.ndarray) -> tuple[list[str], np.ndarray]:
    hot, cold = list(HOT_WORDS), list(COLD_WORDS)
    titles, effects = [], np.zeros(len(classes))
    for i, c in enumerate(classes):
        words = [str(w) for w in rng.choice(CLASS_WORDS[CLASSES[c]], size=rng.integers(1, 3))]
        words += [str(w) for w in rng.choice(FILLER, size=rng.integers(0, 4))]
        roll = rng.random()
        if roll < 0.25:
            w = hot[rng.integers(len(hot))]
            words.insert(0, w)
            effects[i] += HOT_WORDS[w]
        elif roll < 0.35:
            w = cold[rng.integers(len(cold))]
            words.append(w)
            effects[i] += COLD_WORDS[w]
        titles.append(" ".join(words).capitalize())
    return titles, effects


def build_world(rng: np.random.Generator, n_users: int, n_photos: int, start: date, days: int) -> World:
    start_ts = datetime(start.year, start.month, start.day, tzinfo=UTC)
    region = rng.integers(0, len(REGIONS), size=n_users)
    activity = rng.lognormal(mean=0.0, sigma=0.7, size=n_users)
    signup_offset_s = rng.integers(1 * 86400, 400 * 86400, size=n_users)
    users = pl.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1, dtype=np.int64),
            "username": [f"user_{i:06d}" for i in range(1, n_users + 1)],
            "signup_at": [start_ts - timedelta(seconds=int(s)) for s in signup_offset_s],
            "country": [REGIONS[r][1] for r in region],
            "timezone": [REGIONS[r][0] for r in region],
            "activity": activity,
        }
    )

    # Active users post more; posting hour in local time follows a diurnal curve.
    author = rng.choice(n_users, size=n_photos, p=activity / activity.sum())
    day = rng.integers(0, days, size=n_photos)
    hour_weights = np.array([1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 5, 6, 5, 5, 5, 6, 7, 9, 10, 10, 8, 5, 2], float)
    local_hour = rng.choice(24, size=n_photos, p=hour_weights / hour_weights.sum())
    offsets = _local_offsets(start, days)[region[author], day]
    seconds = day * 86400 + (local_hour - offsets) * 3600 + rng.integers(0, 3600, size=n_photos)
    seconds = np.clip(seconds, 0, days * 86400 - 1)  # local evening may fall outside the simulated days
    posted_at = [start_ts + timedelta(seconds=int(s)) for s in seconds]

    visual_class = rng.integers(0, len(CLASSES), size=n_photos)
    style = rng.integers(0, len(STYLES), size=n_photos)
    titles, title_effect = _titles(rng, visual_class)
    hour_effect = np.where((local_hour >= 18) & (local_hour <= 21), 0.5, np.where(local_hour <= 5, -0.5, 0.0))
    score = (
        CLASS_EFFECT[visual_class]
        + STYLE_EFFECT[style]
        + title_effect
        + hour_effect
        + 0.4 * np.log(activity[author])
        + rng.normal(0, 0.3, size=n_photos)
    )
    has_location = rng.random(n_photos) < 0.9
    home = np.array([[r[2], r[3]] for r in REGIONS])[region[author]]
    lat = np.where(has_location, np.clip(home[:, 0] + rng.normal(0, 2, n_photos), -90, 90), np.nan)
    lon = np.where(has_location, np.clip(home[:, 1] + rng.normal(0, 2, n_photos), -180, 180), np.nan)
    photo_id = np.arange(1, n_photos + 1, dtype=np.int64)
    photos = pl.DataFrame(
        {
            "photo_id": photo_id,
            "user_id": author.astype(np.int64) + 1,
            "posted_at": posted_at,
            "title": titles,
            "latitude": lat,
            "longitude": lon,
            "image_key": [f"images/{p}.jpg" for p in photo_id],
        }
    ).with_columns(pl.col("latitude").fill_nan(None), pl.col("longitude").fill_nan(None))
    truth = pl.DataFrame(
        {
            "photo_id": photo_id,
            "visual_class": [CLASSES[c] for c in visual_class],
            "style": [STYLES[s] for s in style],
            "planted_score": score,
        }
    )
    return World(users=users, photos=photos.sort("posted_at", "photo_id"), truth=truth)

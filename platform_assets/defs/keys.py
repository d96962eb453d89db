"""Every asset key, spelled once; the lake paths behind them are in `lib/lake_layout.py`."""

import dagster as dg

RAW_LOGS = dg.AssetKey(["lake", "raw_logs"])
RAW_USERS = dg.AssetKey(["lake", "raw_users"])
RAW_PHOTOS = dg.AssetKey(["lake", "raw_photos"])
USERS = dg.AssetKey(["staging", "users"])
USERS_QUARANTINE = dg.AssetKey(["staging", "users_quarantine"])
PHOTOS = dg.AssetKey(["staging", "photos"])
PHOTOS_QUARANTINE = dg.AssetKey(["staging", "photos_quarantine"])
EVENTS = dg.AssetKey(["staging", "events"])
EVENTS_QUARANTINE = dg.AssetKey(["staging", "events_quarantine"])
ACTIVITY_TILES = dg.AssetKey(["features", "activity_tiles"])
USER_ACTIVITY = dg.AssetKey(["features", "user_activity"])
LATEST_ACTIVITY = dg.AssetKey(["features", "latest_activity"])
LABELS = dg.AssetKey(["features", "popularity_labels"])
PHOTO_FEATURES = dg.AssetKey(["features", "photo_features"])
TRAINING_SET = dg.AssetKey(["features", "training_set"])
IMAGE_ENCODER = dg.AssetKey(["embeddings", "image_encoder"])
IMAGE_EMBEDDINGS = dg.AssetKey(["embeddings", "image_embeddings"])
TITLE_EMBEDDINGS = dg.AssetKey(["embeddings", "title_embeddings"])
TRAINING_SHARDS = dg.AssetKey(["shards", "training_shards"])
POPULARITY_MODEL = dg.AssetKey(["models", "popularity_model"])

"""The embeddings' jobs: the image encoder retrained on demand, and the embeddings of a range of
posting days brought up to date (`shards_automation` does the last days by itself)."""

import dagster as dg

from platform_assets.defs.keys import IMAGE_EMBEDDINGS, IMAGE_ENCODER, TITLE_EMBEDDINGS

image_encoder_job = dg.define_asset_job(
    "image_encoder_job",
    selection=dg.AssetSelection.assets(IMAGE_ENCODER),
    description="Train the image encoder (or load its weights): a retraining to choose, not a daily step.",
)
embeddings_job = dg.define_asset_job(
    "embeddings_job",
    selection=dg.AssetSelection.assets(IMAGE_EMBEDDINGS, TITLE_EMBEDDINGS),
    description="Bring the image and title embeddings of a range of posting days up to date, in one run.",
)

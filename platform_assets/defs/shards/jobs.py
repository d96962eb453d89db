"""`shards_job`: one day's training shards written and pinned on demand (`shards_automation`
rewrites the days whose inputs change by itself)."""

import dagster as dg

from platform_assets.defs.keys import TRAINING_SHARDS

shards_job = dg.define_asset_job(
    "shards_job",
    selection=dg.AssetSelection.assets(TRAINING_SHARDS),
    description="Write one day's augmented training shards.",
)

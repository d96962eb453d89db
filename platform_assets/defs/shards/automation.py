"""Shards follow the training set and the embeddings declaratively: a day's shards are rewritten
(and re-pinned) when that day of `features/training_set` or of the embeddings is rewritten, and
the embeddings of the last days follow the app database's photos (`on_new_photos`), all by
Dagster's automation sensor rather than a hand-written one. New log files stay with `new_logs_sensor` (it lists S3) and the
ranged features rebuild with `features_sensor` (its range follows the 30-day windows)."""

import dagster as dg

from platform_assets.defs.keys import IMAGE_EMBEDDINGS, TITLE_EMBEDDINGS, TRAINING_SHARDS
from platform_assets.defs.run_lanes import BACKGROUND

# Any day of the training set, not only the latest: a late log file rewrites older days. The
# embeddings are by posting day too, so a refresh re-shards only the days it rewrote.
on_training_day_rewritten = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("training_set or embeddings day rewritten")

shards_automation = dg.AutomationConditionSensorDefinition(
    "shards_automation",
    target=dg.AssetSelection.assets(IMAGE_EMBEDDINGS, TITLE_EMBEDDINGS, TRAINING_SHARDS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    run_tags=BACKGROUND,
    emit_backfills=False,  # one run per changed day, launched directly: no backfill daemon hop
    description="Declarative automation of the embeddings of the last days and of shards/training_shards: "
    "one run per rewritten day.",
)

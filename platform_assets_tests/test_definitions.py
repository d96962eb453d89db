"""The code location loads, validates and shows the layers the design promises."""

import subprocess
import sys

import dagster as dg

from platform_assets.definitions import defs
from platform_assets.defs.keys import EVENTS, RAW_LOGS
from platform_assets_tests.support.helpers import ROOT


def test_assets_are_grouped_by_layer_with_descriptions_and_schemas() -> None:
    graph = defs().resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        groups.setdefault(node.group_name, set()).add(key.to_user_string())
        assert node.description, key
        assert key.path[0] == node.group_name, key  # keys are prefixed by their layer
    assert groups["lake"] == {"lake/raw_users", "lake/raw_photos", "lake/raw_logs"}
    assert {"staging/events", "staging/events_quarantine", "staging/users", "staging/photos"} <= groups["staging"]
    assert groups["embeddings"] == {
        "embeddings/image_encoder",
        "embeddings/image_embeddings",
        "embeddings/title_embeddings",
    }
    assert groups["shards"] == {"shards/training_shards"}
    assert groups["models"] == {"models/popularity_model"}
    assert groups["features"] == {
        "features/activity_tiles",
        "features/user_activity",
        "features/latest_activity",
        "features/photo_features",
        "features/popularity_labels",
        "features/training_set",
    }
    events = graph.get(EVENTS)
    schema = events.metadata["dagster/column_schema"]
    assert {c.name for c in schema.columns} >= {"event_id", "ts", "user_id", "photo_id", "event_type"}
    assert all(c.description for c in schema.columns)
    assert RAW_LOGS in events.parent_keys


def test_sensor_and_jobs_are_registered() -> None:
    d = defs()
    assert d.get_sensor_def("new_logs_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    assert d.get_sensor_def("features_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    assert d.get_schedule_def("nightly_training").cron_schedule == "0 3 * * *"
    assert d.get_sensor_def("shards_automation").default_status == dg.DefaultSensorStatus.RUNNING
    assert d.resolve_job_def("events_job") and d.resolve_job_def("app_db_job") and d.resolve_job_def("features_job")


def test_unknown_deployment_fails_fast(monkeypatch) -> None:
    import pytest

    monkeypatch.setenv("PLATFORM_ASSETS_DEPLOYMENT", "staging-ish")
    with pytest.raises(Exception) as err:
        defs()
    chain, exc = [], err.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert any("PLATFORM_ASSETS_DEPLOYMENT='staging-ish': use one of local, production, cluster" in m for m in chain)


def test_feature_catalog_is_current() -> None:
    from platform_assets.lib.features.catalog import render_catalog

    assert (ROOT / "docs" / "FEATURES.md").read_text() == render_catalog(), (
        "run: platform-assets catalog > docs/FEATURES.md"
    )


def test_loading_the_code_location_prints_no_warning() -> None:
    """What `make demo`, `make ui` and every run worker print first: nothing but their own output."""
    code = "import platform_assets.definitions as d; d.defs().get_repository_def().get_all_jobs()"
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr[-2000:]


def test_both_deployments_keep_one_queue_slot_free_of_follow_on_runs(tmp_path) -> None:
    """The background lane's limit is in each shipped dagster.yaml, under the tag its runs carry:
    at most one follow-on run at a time, so a new log file's run has a slot."""
    import shutil

    from dagster._core.instance.config import dagster_instance_config

    from platform_assets.defs.lake.sensors import EVENTS_DAY_TAG
    from platform_assets.defs.run_lanes import BACKGROUND, LANE_TAG
    from platform_assets.defs.shards.automation import shards_automation

    for deployment in ("local", "production"):
        home = tmp_path / deployment
        home.mkdir()
        shutil.copy(ROOT / "deploy" / deployment / "dagster.yaml", home)
        config, _ = dagster_instance_config(str(home))
        queue = config["run_coordinator"]["config"]
        assert {"key": LANE_TAG, "value": BACKGROUND[LANE_TAG], "limit": 1} in queue["tag_concurrency_limits"]
        one_per_day = {"key": EVENTS_DAY_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        assert one_per_day in queue["tag_concurrency_limits"]  # a day's staging runs append parts: one at a time
        assert queue["max_concurrent_runs"] >= 2 and queue["dequeue_interval_seconds"] == 1
    assert shards_automation.run_tags == BACKGROUND


def test_every_job_lowers_background_lane_runs() -> None:
    """The automation's implicit asset job as much as the named ones: whichever job a run of the
    background lane launches, its executor lowers the run's CPU priority (test_run_lanes.py)."""
    from platform_assets.defs.run_lanes import LaneAwareExecutorDefinition

    jobs = defs().get_repository_def().get_all_jobs()
    assert {job.name for job in jobs} >= {"__ASSET_JOB", "events_job", "features_job", "shards_job"}
    assert {job.name: type(job.executor_def) for job in jobs} == {job.name: LaneAwareExecutorDefinition for job in jobs}
    assert {job.name: job.executor_def.name for job in jobs if job.name in ("events_job", "features_job")} == {
        "events_job": "in_process",
        "features_job": "in_process",
    }

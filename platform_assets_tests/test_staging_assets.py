"""Materialize the lake and staging layers on a small generated lake and check the values."""

import gzip
import os
from collections import Counter

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from platform_assets.defs.keys import PHOTOS, PHOTOS_QUARANTINE
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.lake_layout import partition_key, staging_key
from platform_assets.lib.simulator.logs import DEFECT_KINDS

APP_ASSETS = [raw_users, raw_photos, stage_users, stage_photos]


def materialize_day(lake, day: str, instance=None) -> dg.ExecuteInProcessResult:
    return dg.materialize([stage_events], partition_key=day, resources=lake.resources(), instance=instance)


def test_every_valid_event_once_and_every_planted_defect_quarantined(small_lake) -> None:
    for day, planted in small_lake.manifest["days"].items():
        result = materialize_day(small_lake, day)
        assert result.success
        events = small_lake.store.read_parquet(partition_key("staging/events", day))
        quarantine = small_lake.store.read_parquet(partition_key("staging/events_quarantine", day))
        assert events.num_rows == planted["valid_events"]
        assert pc.count_distinct(events["event_id"]).as_py() == events.num_rows
        assert quarantine.num_rows == planted["quarantined"]
        assert pc.min(events["ts"]).as_py().date().isoformat() == day
        assert pc.max(events["ts"]).as_py().date().isoformat() == day
        by_reason = Counter(reason.split(":")[0] for reason in quarantine["reason"].to_pylist())
        assert by_reason == {kind: planted[kind] for kind in DEFECT_KINDS if planted.get(kind)}  # the simulator's tally

        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert all(c.passed for c in checks.values()), checks
        mats = {
            m.asset_key.path[-1]: m.metadata
            for m in result.get_asset_materialization_events()
            for m in [m.materialization]
        }
        assert mats["events"]["dagster/row_count"].value == planted["valid_events"]
        assert mats["events"]["quarantined_lines"].value == planted["quarantined"]
        assert mats["events_quarantine"]["dagster/row_count"].value == planted["quarantined"]
        assert "| event_id" in mats["events"]["preview"].value


def test_drifted_field_reported_and_kept(small_lake) -> None:
    day = max(small_lake.manifest["days"])
    result = materialize_day(small_lake, day)
    events = small_lake.store.read_parquet(partition_key("staging/events", day))
    drifted = pc.sum(pc.is_valid(events["extra_json"])).as_py()
    assert drifted > 0
    mat = [m.materialization for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "events"][0]
    assert mat.metadata["drift_unexpected_fields"].value == {"app_version": drifted}


def test_rebuilding_a_partition_gives_identical_bytes(small_lake) -> None:
    day = min(small_lake.manifest["days"])
    key = partition_key("staging/events", day)
    materialize_day(small_lake, day)
    first = small_lake.store.read_bytes(key)
    materialize_day(small_lake, day)
    assert small_lake.store.read_bytes(key) == first


def test_quarantine_share_check_warns_but_does_not_fail(small_lake) -> None:
    day = min(small_lake.manifest["days"])
    result = dg.materialize(
        [stage_events],
        partition_key=day,
        resources=small_lake.resources(),
        run_config=dg.RunConfig({"stage_events": {"config": {"max_quarantine_share": 0.0}}}),
    )
    assert result.success
    check = [c for c in result.get_asset_check_evaluations() if c.check_name == "quarantine_share_below_threshold"][0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN


def test_app_tables_extracted_and_staged(small_lake) -> None:
    result = dg.materialize(APP_ASSETS, resources=small_lake.resources())
    assert result.success
    users = small_lake.store.read_parquet(staging_key("users"))
    photos = small_lake.store.read_parquet(staging_key("photos"))
    scale = small_lake.manifest["scale"]
    assert users.num_rows == scale["users"] and photos.num_rows == scale["photos"]
    assert str(photos.schema.field("posted_at").type) == "timestamp[us, tz=UTC]"
    assert set(pc.unique(photos["user_id"]).to_pylist()) <= set(users["user_id"].to_pylist())
    assert small_lake.store.read_parquet(staging_key("photos_quarantine")).num_rows == 0


def _stage_with(tmp_path, raw_photos_table: pa.Table, users: pa.Table):
    from platform_assets.lib.lake_store import LakeStore

    store = LakeStore(str(tmp_path))
    store.write_parquet(staging_key("users"), users)
    store.write_parquet("raw/app_db/photos.parquet", raw_photos_table)
    from platform_assets.defs.resources import AppDatabaseResource, LakeResource

    return store, dg.materialize(
        [stage_photos],
        selection=[PHOTOS, PHOTOS_QUARANTINE],
        resources={"lake": LakeResource(root=str(tmp_path)), "app_db": AppDatabaseResource(url="sqlite://")},
    )


USERS = pa.table(
    {"user_id": [1, 2], "username": ["a", "b"], "signup_at": pa.array([0, 0], pa.timestamp("us", tz="UTC"))}
)


def test_bad_photo_rows_quarantined_and_drift_absorbed(tmp_path) -> None:
    raw = pa.table(
        {
            "photo_id": [1, 2, 2, None, 4],
            "user_id": [1, 2, 2, 1, 99],
            "posted_at": [
                "2026-11-01 10:00:00",
                "2026-11-01 11:00:00",
                "2026-11-01 11:00:00",
                "2026-11-01",
                "2026-11-01",
            ],
            "image_key": ["images/1.jpg", "images/2.jpg", "images/2.jpg", "images/x.jpg", "images/4.jpg"],
            "latitude": [91.0, 10.0, 10.0, 0.0, 0.0],
            "camera": ["x", "y", "y", "z", "w"],  # a new column the contract does not know
        }
    )  # `title` and `longitude` dropped by the source
    store, result = _stage_with(tmp_path, raw, USERS)
    assert result.success
    photos = store.read_parquet(staging_key("photos")).to_pylist()
    assert [p["photo_id"] for p in photos] == [1, 2]
    assert photos[0]["latitude"] is None and photos[1]["latitude"] == 10.0 and photos[0]["title"] is None
    reasons = sorted(store.read_parquet(staging_key("photos_quarantine"))["reason"].to_pylist())
    assert reasons == ["bad_key: photo_id is missing or not an integer", "duplicate_key: photo_id", "unknown_user: 99"]
    mat = [m.materialization for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "photos"][0]
    assert mat.metadata["drift_unexpected_columns"].value == "camera"
    assert mat.metadata["drift_missing_optional_columns"].value == "title, longitude"


def test_missing_required_column_fails_with_its_name(tmp_path) -> None:
    raw = pa.table({"photo_id": [1], "user_id": [1], "image_key": ["images/1.jpg"]})
    with pytest.raises(Exception, match=r"has no column\(s\) \['posted_at'\]"):
        _stage_with(tmp_path, raw, USERS)


def test_missing_lake_is_a_clear_configuration_error(tmp_path) -> None:
    from platform_assets.defs.resources import AppDatabaseResource, LakeResource

    with pytest.raises(Exception, match="is not a directory: run `platform-assets lake generate`"):
        dg.materialize(
            [stage_events],
            partition_key="2026-11-01",
            resources={
                "lake": LakeResource(root=str(tmp_path / "nope")),
                "app_db": AppDatabaseResource(url="sqlite://"),
            },
        )


def test_a_redelivered_file_credits_the_first_delivery_whatever_its_name(fresh_lake) -> None:
    (redelivered,) = fresh_lake.manifest["redelivered_files"]
    original = redelivered.replace("-redelivery.jsonl.gz", ".jsonl.gz")
    assert redelivered < original  # the redelivery's name sorts first: the order of names would credit it
    landed = os.stat(fresh_lake.store.path(original)).st_mtime_ns
    os.utime(
        fresh_lake.store.path(redelivered), ns=(landed + 60 * 10**9, landed + 60 * 10**9)
    )  # it landed a minute later
    day = redelivered.split("dt=")[1][:10]
    assert materialize_day(fresh_lake, day).success
    sources = set(fresh_lake.store.read_parquet(partition_key("staging/events", day))["source_file"].to_pylist())
    assert original in sources and redelivered not in sources


def test_files_outside_the_layout_and_an_empty_day_are_reported_not_silent(fresh_lake) -> None:
    day = min(fresh_lake.manifest["days"])
    strays = [
        f"logs/dt={day}/stray.jsonl.gz",
        f"logs/dt={day}/hour=24/part-00.jsonl.gz",
        f"logs/dt={day}/hour=01/part-09.json.gz",
    ]
    for key in strays:
        fresh_lake.store.write_bytes(key, b"")
    mats = {
        m.asset_key.path[-1]: m.materialization.metadata
        for m in materialize_day(fresh_lake, day).get_asset_materialization_events()
    }
    assert sorted(mats["events"]["skipped_files"].value) == sorted(strays)
    assert mats["events"]["empty_day"].value is False
    empty = "2026-10-15"  # a day folder holding only blank lines
    fresh_lake.store.write_bytes(f"logs/dt={empty}/hour=00/part-00.jsonl.gz", gzip.compress(b"\n  \n"))
    result = materialize_day(fresh_lake, empty)
    assert result.success
    mats = {m.asset_key.path[-1]: m.materialization.metadata for m in result.get_asset_materialization_events()}
    assert mats["events"]["empty_day"].value is True and mats["events"]["dagster/row_count"].value == 0
    assert mats["events"]["blank_lines"].value == 2 and mats["events"]["quarantined_lines"].value == 0

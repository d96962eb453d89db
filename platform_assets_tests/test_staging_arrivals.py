"""A day's log files staged as they land: each run parses only the new files into one more
part, and the parts together hold exactly what staging the whole day at once gives."""

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.lake_layout import EVENTS_PATH, EVENTS_QUARANTINE_PATH, day_parts, log_day, log_day_prefix
from platform_assets.lib.simulator import append_hour
from platform_assets.lib.staging import day_parts as staging
from platform_assets.lib.staging.day_parts import stage_day, staged_day


def landed(store, day: str) -> list:
    return sorted(
        (f for f in store.list_files(log_day_prefix(day)) if log_day(f.key)), key=lambda f: (f.landed_ns, f.key)
    )


def whole(store, dataset: str, day: str, order: list[str]) -> pa.Table:
    return pa.concat_tables(store.read_parquet(k) for k in day_parts(store, dataset, day)).sort_by(
        [(c, "ascending") for c in order]
    )


def test_files_staged_as_they_land_hold_what_staging_the_day_at_once_gives(fresh_lake, monkeypatch) -> None:
    store, day = fresh_lake.store, log_day(fresh_lake.manifest["redelivered_files"][0])
    files = landed(store, day)
    assert len(files) >= 4 and any("redelivery" in f.key for f in files)
    parsed = []  # the files each run reads
    read = staging.read_log_lines
    monkeypatch.setattr(staging, "read_log_lines", lambda s, keys: parsed.append(keys) or read(s, keys))
    for n in range(1, len(files) + 1):
        run = stage_day(store, date.fromisoformat(day), files[:n])
        assert not run.whole_day or n == 1
        assert run.checks["ids_staged_before"] == 0 and run.checks["duplicate_ids"] == 0
    assert parsed == [[f.key] for f in files]  # every line parsed once
    staged = staged_day(store, day)
    assert len(staged.parts) == len(files) and staged.files == [staging._entry(f) for f in files]
    redelivered = [p for f, p in zip(files, staged.parts) if "redelivery" in f.key]
    assert all(store.read_parquet(p).num_rows == 0 for p in redelivered)  # every event in it came first elsewhere
    events = whole(store, EVENTS_PATH, day, ["ts", "event_id"])
    quarantine = whole(store, EVENTS_QUARANTINE_PATH, day, ["source_file", "line_number"])
    assert pc.count_distinct(events["event_id"]).as_py() == events.num_rows
    assert events.num_rows == fresh_lake.manifest["days"][day]["valid_events"]

    at_once = stage_day(store, date.fromisoformat(day), files, restage=True)
    assert at_once.whole_day and staged_day(store, day).parts == [f"{EVENTS_PATH}/dt={day}/part-0.parquet"]
    assert not any(store.exists(p) for p in staged.parts[1:])  # the appended parts went with the restage
    assert whole(store, EVENTS_PATH, day, ["ts", "event_id"]).equals(events)
    assert whole(store, EVENTS_QUARANTINE_PATH, day, ["source_file", "line_number"]).equals(quarantine)
    assert at_once.day.stats == staged.stats and at_once.day.reasons == staged.reasons


def test_a_changed_or_earlier_landed_file_stages_the_day_whole_again(fresh_lake) -> None:
    store, day = fresh_lake.store, max(fresh_lake.manifest["days"])
    files = landed(store, day)
    when = date.fromisoformat(day)
    stage_day(store, when, files[:2])
    stage_day(store, when, files[:3])
    assert len(staged_day(store, day).parts) == 2  # the first two files at once, then the third
    assert staging.files_to_stage(staged_day(store, day), files) == files[3:]
    assert staging.files_to_stage(staged_day(store, day), [files[0], files[3], files[1], files[2]]) is None
    assert staging.files_to_stage(staged_day(store, day), files[1:]) is None  # a staged file went away
    store.write_bytes(files[1].key, store.read_bytes(files[0].key))  # a staged file rewritten
    now = landed(store, day)
    run = stage_day(store, when, now)
    assert run.whole_day and len(run.day.parts) == 1 and len(run.staged_files) == len(now)
    again = stage_day(store, when, now)  # nothing new: nothing read, nothing written
    assert again.part is None and again.day == run.day


def test_the_asset_appends_a_new_hour_and_reports_the_whole_day(fresh_lake, instance) -> None:
    """Through Dagster: the second run stages only the new hour's files, and the materialization
    counts the whole day (what the features read)."""
    resources, day = fresh_lake.resources(), max(fresh_lake.manifest["days"])

    def stage() -> dict:
        result = dg.materialize([stage_events], partition_key=day, resources=resources, instance=instance)
        assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
        (mat,) = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "events"]
        return {k: v.value for k, v in mat.materialization.metadata.items()}

    first = stage()
    assert first["staged_whole_day"] and first["parts"] == 1
    before = len(landed(fresh_lake.store, day))
    append_hour(fresh_lake.store, late_day=day)  # a late file for the day
    new = len(landed(fresh_lake.store, day)) - before
    assert new > 0
    second = stage()
    assert not second["staged_whole_day"] and second["files_staged_by_this_run"] == new and second["parts"] == 2
    rows = sum(fresh_lake.store.read_parquet(k).num_rows for k in day_parts(fresh_lake.store, EVENTS_PATH, day))
    assert second["dagster/row_count"] == rows > first["dagster/row_count"]

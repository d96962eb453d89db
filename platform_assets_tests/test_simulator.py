from platform_assets.lib.lake_layout import list_log_days
from platform_assets_tests.helpers import SMALL, make_lake


def test_same_seed_gives_identical_lake(tmp_path, small_lake) -> None:
    again = make_lake(tmp_path)
    assert again.manifest["total"] == small_lake.manifest["total"]
    for key in ("logs/dt=2026-11-01/hour=05/part-00.jsonl.gz", "images/7.jpg", "_simulator/photo_truth.parquet"):
        assert again.store.read_bytes(key) == small_lake.store.read_bytes(key)


def test_lake_has_every_planted_defect(small_lake) -> None:
    m = small_lake.manifest
    total = m["total"]
    for kind in ("malformed_json", "missing_field", "wrong_type", "duplicate_lines", "drift_lines"):
        assert total[kind] > 0, kind
    assert len(m["redelivered_files"]) == 1 and len(m["late_files"]) == 1
    days, strays = list_log_days(small_lake.store)
    assert sorted(days) == ["2026-11-01", "2026-11-02"] and strays == []
    assert sum(len(d.files) for d in days.values()) == total["files"]
    assert len(small_lake.store.list_files("images")) == SMALL.photos


def test_append_hour_delivers_the_next_hour_and_a_late_file(fresh_lake) -> None:
    from platform_assets.lib.simulator import append_hour

    keys = append_hour(fresh_lake.store, late_day="2026-11-01")
    assert keys[0] == "logs/dt=2026-11-03/hour=00/part-00.jsonl.gz"
    assert keys[1].startswith("logs/dt=2026-11-01/hour=23/part-late-")
    assert append_hour(fresh_lake.store) == ["logs/dt=2026-11-03/hour=01/part-00.jsonl.gz"]

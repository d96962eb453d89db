from platform_assets.lib.lake_layout import list_log_days
from platform_assets_tests.support.helpers import SMALL, make_lake


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


def test_a_lake_of_many_chunks_renders_each_photo_as_one_process_would(tmp_path, monkeypatch) -> None:
    """Photo-sized lakes spread their images over a process per core: each photo's bytes depend
    only on the seed and its id, so they match rendering it alone, here."""
    import numpy as np
    import polars as pl

    from platform_assets.lib.lake_layout import GROUND_TRUTH_FILE
    from platform_assets.lib.simulator import LakeScale, generate
    from platform_assets.lib.simulator.images import encode_jpeg, render

    monkeypatch.setattr(generate, "IMAGE_CHUNK", 40)  # 3 chunks, 2 worker processes
    scale = LakeScale(users=30, photos=100, days=1, events_per_day=500, image_width=96, image_height=72, seed=11)
    lake = make_lake(tmp_path, scale)
    truth = pl.from_arrow(lake.store.read_parquet(GROUND_TRUTH_FILE))
    noisy = 0
    for photo_id, visual_class, style in truth.select("photo_id", "visual_class", "style").iter_rows():
        pixels = render(np.random.default_rng([scale.seed, photo_id]), visual_class, style, 96, 72)
        assert lake.store.read_bytes(f"images/{photo_id}.jpg") == encode_jpeg(pixels), photo_id
        noisy += style == "noisy"
    assert truth.height == 100 and noisy > 5

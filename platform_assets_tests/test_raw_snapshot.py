"""The raw snapshots stream the app database a batch at a time and write what reading the whole
table writes: the same column types (relaxed across batches) and the same bytes."""

import sqlite3

import pyarrow.parquet as pq

from platform_assets.defs.resources import AppDatabaseResource
from platform_assets.lib.lake_layout import TABLE_ROW_GROUP_ROWS
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.raw_snapshot import write_snapshot


def test_a_table_read_in_batches_is_written_with_the_whole_tables_types_and_bytes(tmp_path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (user_id INTEGER, username TEXT, bio TEXT, score)")
        rows = [(i, f"u{i}", None if i < 250 else f"bio {i}", i if i < 400 else i + 0.5) for i in range(500)]
        db.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", rows)
    app_db = AppDatabaseResource(url=f"sqlite:///{path}", batch_rows=100)
    store = LakeStore(str(tmp_path / "lake"))
    batches = []

    def counted(frames):
        for frame in frames:
            batches.append(frame.height)
            yield frame

    written = app_db.extract("users", lambda frames: write_snapshot(store, "users.parquet", counted(frames)))
    assert batches == [100] * 5 and written.rows == 500
    whole = app_db.read_table("users")
    # bio is null in the first batches and text later; score is whole numbers, then fractions
    assert str(whole.schema.field("bio").type) in ("large_string", "string", "string_view")
    assert whole.schema.field("score").type == "double"
    assert pq.read_table(store.path("users.parquet")).equals(whole)
    store.write_parquet("whole.parquet", whole, TABLE_ROW_GROUP_ROWS)
    assert store.read_bytes("users.parquet") == store.read_bytes("whole.parquet")
    assert written.head.to_pylist() == whole.slice(0, 5).to_pylist()

import pyarrow as pa
import pytest

from platform_assets.lib.lake_store import LakeKeyError, LakeStore, validate_key


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/path", "a/../../b", "a//b", "a/./b", "a/b c", ""])
def test_keys_that_escape_or_are_odd_are_rejected(key: str) -> None:
    with pytest.raises(LakeKeyError):
        validate_key(key)


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path) -> None:
    store = LakeStore(str(tmp_path))
    store.write_bytes("a/b/c.bin", b"x" * 10)
    store.write_bytes("a/b/c.bin", b"y" * 3)
    assert store.read_bytes("a/b/c.bin") == b"yyy"
    assert [e.key for e in store.list_files("a")] == ["a/b/c.bin"]
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["c.bin"]


def test_parquet_bytes_are_deterministic(tmp_path) -> None:
    store = LakeStore(str(tmp_path))
    table = pa.table({"x": list(range(100)), "y": [str(i) for i in range(100)]})
    store.write_parquet("one.parquet", table)
    store.write_parquet("two.parquet", table)
    assert store.read_bytes("one.parquet") == store.read_bytes("two.parquet")
    assert store.read_parquet("one.parquet").equals(table)


def test_gz_files_are_stored_as_given_not_recompressed(tmp_path) -> None:
    store = LakeStore(str(tmp_path))
    store.write_bytes("logs/x.jsonl.gz", b"\x1f\x8bnot really")
    assert (tmp_path / "logs" / "x.jsonl.gz").read_bytes() == b"\x1f\x8bnot really"
    assert store.read_bytes("logs/x.jsonl.gz") == b"\x1f\x8bnot really"
